//! Online and offline announcements: a user is *online* when their first stream opens anywhere
//! in the cluster, and *offline* when their last one closes and none opens within the offline
//! delay. The binary turns each announcement into webhook calls; this module decides when
//! there is one, exactly once per transition per cluster.
//!
//! Three parts, so that streams never wait for any of it:
//!
//! * [`UserChanges`]: the hub marks a user when their streams on this node go from none to some
//!   or back, in a set (a burst of reconnects is one entry). Off until an announcer starts, so
//!   a hub without webhooks pays one relaxed load per stream.
//! * A [`PresenceBook`]: the cluster's view, which nodes have streams of which user and which
//!   offlines are due when. [`LocalBook`] is one node's; the Redis broker keeps one shared by
//!   every node, changed by scripts, so that of two nodes racing on a transition exactly one
//!   sees it, and a due offline is claimed by one node only. A node that dies has its users
//!   leave for it (see the Redis broker).
//! * The [`Announcer`] task: takes the marked users, compares the registry with what it last
//!   told the book, tells the book the difference, claims due offlines every tick, and puts each
//!   announcement in a bounded queue. A full queue drops the announcement (counted in
//!   `herald_announcements_dropped_total`) rather than hold anything up.
//!
//! The delivery guarantee follows: at most one `user.online` and one `user.offline` per
//! transition, cluster-wide. A stream that opens and closes before the announcer looks (a few
//! milliseconds) may go unannounced, and so may a transition whose node stops before its queue
//! is delivered.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use crate::backoff::{Backoff, Retries};
use crate::broker::BrokerError;
use crate::hub::Hub;
use crate::id::unix_ms;
use crate::metrics as m;

/// Announcements waiting for delivery, at most (each a user id and a time).
pub const QUEUE: usize = 10_000;

/// Offlines claimed per tick, at most (the rest are claimed on the next ones).
pub const DUE_PER_TICK: usize = 1000;

/// What happened to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Transition {
    #[serde(rename = "user.online")]
    Online,
    #[serde(rename = "user.offline")]
    Offline,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Online => "user.online",
            Transition::Offline => "user.offline",
        }
    }
}

/// One announcement: the webhook body's fields.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Announcement {
    #[serde(rename = "type")]
    pub transition: Transition,
    pub user: String,
    /// When it happened (Unix ms): the first stream's opening, the last stream's end.
    pub at: u64,
}

/// What the book answers on each tick.
#[derive(Debug, Default)]
pub struct Due {
    /// Users now offline: `(user, when their last stream ended)`.
    pub offline: Vec<(String, u64)>,
    /// The cluster took this node for dead and made its users leave; it must tell the book
    /// again about every user it has streams of.
    pub forgotten: bool,
}

/// The cluster's view of who has streams where (see the module docs).
#[async_trait]
pub trait PresenceBook: Send + Sync + 'static {
    /// This node now has streams of `user` (it had none). True if that brings the user online:
    /// no other node has any and no offline is pending (a pending one is cancelled).
    async fn arrive(&self, user: &str, at_ms: u64) -> Result<bool, BrokerError>;

    /// This node no longer has streams of `user`. If no node has any, an offline becomes due
    /// after the book's offline delay, unless a stream arrives first.
    async fn depart(&self, user: &str, at_ms: u64) -> Result<(), BrokerError>;

    /// Claims the offlines due by `now_ms` (at most [`DUE_PER_TICK`]); no other node gets them.
    async fn due(&self, now_ms: u64) -> Result<Due, BrokerError>;
}

/// One node's book: every stream is here, so the cluster is this node.
pub struct LocalBook {
    offline_delay_ms: u64,
    pending: Mutex<Pending>,
}

impl LocalBook {
    pub fn new(offline_delay: Duration) -> Self {
        Self {
            offline_delay_ms: offline_delay.as_millis() as u64,
            pending: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct Pending {
    /// user → (due, at)
    by_user: HashMap<String, (u64, u64)>,
    by_due: BTreeSet<(u64, String)>,
}

#[async_trait]
impl PresenceBook for LocalBook {
    async fn arrive(&self, user: &str, _at_ms: u64) -> Result<bool, BrokerError> {
        let mut pending = self.pending.lock();
        match pending.by_user.remove(user) {
            Some((due, _)) => {
                pending.by_due.remove(&(due, user.to_string()));
                Ok(false)
            }
            None => Ok(true),
        }
    }

    async fn depart(&self, user: &str, at_ms: u64) -> Result<(), BrokerError> {
        let due_ms = at_ms + self.offline_delay_ms;
        let mut pending = self.pending.lock();
        if let Some((due, _)) = pending.by_user.insert(user.to_string(), (due_ms, at_ms)) {
            pending.by_due.remove(&(due, user.to_string()));
        }
        pending.by_due.insert((due_ms, user.to_string()));
        Ok(())
    }

    async fn due(&self, now_ms: u64) -> Result<Due, BrokerError> {
        let mut pending = self.pending.lock();
        let mut offline = Vec::new();
        while offline.len() < DUE_PER_TICK {
            let Some((due, _)) = pending.by_due.first() else {
                break;
            };
            if *due > now_ms {
                break;
            }
            let Some((_, user)) = pending.by_due.pop_first() else {
                break;
            };
            if let Some((_, at)) = pending.by_user.remove(&user) {
                offline.push((user, at));
            }
        }
        Ok(Due {
            offline,
            forgotten: false,
        })
    }
}

/// Users whose streams on this node went from none to some, or back (see the module docs).
#[derive(Default)]
pub(crate) struct UserChanges {
    enabled: AtomicBool,
    marked: Mutex<HashSet<Arc<str>>>,
    wake: Notify,
}

impl UserChanges {
    /// Marks `user`, whose first stream here just opened or last one ended.
    pub fn note(&self, user: &Arc<str>) {
        if self.enabled.load(Ordering::Relaxed) {
            self.marked.lock().insert(user.clone());
            self.wake.notify_one();
        }
    }

    fn take(&self) -> HashSet<Arc<str>> {
        std::mem::take(&mut *self.marked.lock())
    }
}

/// The task that turns user changes into announcements (see the module docs).
pub struct Announcer {
    hub: Weak<Hub>,
    book: Arc<dyn PresenceBook>,
    offline_delay: Duration,
    out: mpsc::Sender<Announcement>,
    /// Users this node has told the book it has streams of.
    told: HashSet<Arc<str>>,
    /// Users whose change the book could not take yet (it is unreachable).
    retry: HashSet<Arc<str>>,
}

impl Announcer {
    /// Starts announcing `hub`'s users through `book`, whose offline delay is `offline_delay`;
    /// announcements arrive on the returned queue (at most [`QUEUE`] waiting). The task ends
    /// when the hub is dropped.
    pub fn spawn(
        hub: &Arc<Hub>,
        book: Arc<dyn PresenceBook>,
        offline_delay: Duration,
    ) -> mpsc::Receiver<Announcement> {
        let (out, announcements) = mpsc::channel(QUEUE);
        hub.user_changes.enabled.store(true, Ordering::Relaxed);
        let announcer = Announcer {
            hub: Arc::downgrade(hub),
            book,
            offline_delay,
            out,
            told: HashSet::new(),
            retry: HashSet::new(),
        };
        tokio::spawn(announcer.run());
        announcements
    }

    async fn run(mut self) {
        // Due offlines are looked for a few times per delay, at most every second.
        let tick =
            (self.offline_delay / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retries = Retries::new(Backoff::default());
        let Some(changes) = self.hub.upgrade().map(|hub| hub.user_changes.clone()) else {
            return;
        };
        loop {
            let Some(hub) = self.hub.upgrade() else {
                return;
            };
            let changed = changes.wake.notified();
            let mut users = changes.take();
            users.extend(self.retry.drain());
            for user in users {
                let streams = hub.registry.read().streams_of(&user);
                if let Err(error) = self.reconcile(&user, streams > 0).await {
                    tracing::warn!(%error, "presence book unreachable; announcements wait");
                    self.retry.insert(user);
                }
            }
            match self.book.due(unix_ms()).await {
                Ok(due) => {
                    if due.forgotten {
                        // Tell the book again about every user with streams here.
                        self.retry.extend(self.told.drain());
                    }
                    for (user, at) in due.offline {
                        self.announce(Transition::Offline, user, at);
                    }
                }
                Err(error) => tracing::warn!(%error, "presence book unreachable"),
            }
            drop(hub);
            let wait = if self.retry.is_empty() {
                retries.reset();
                tick
            } else {
                retries.next_delay().min(tick)
            };
            tokio::select! {
                _ = changed => {}
                _ = ticks.tick() => {}
                _ = tokio::time::sleep(wait), if !self.retry.is_empty() => {}
            }
        }
    }

    async fn reconcile(&mut self, user: &Arc<str>, here: bool) -> Result<(), BrokerError> {
        let now = unix_ms();
        match (here, self.told.contains(user)) {
            (true, false) => {
                if self.book.arrive(user, now).await? {
                    self.announce(Transition::Online, user.to_string(), now);
                }
                metrics::counter!(m::PRESENCE_CHANGES, "change" => "arrive").increment(1);
                self.told.insert(user.clone());
            }
            (false, true) => {
                self.book.depart(user, now).await?;
                metrics::counter!(m::PRESENCE_CHANGES, "change" => "depart").increment(1);
                self.told.remove(user);
            }
            _ => {}
        }
        Ok(())
    }

    fn announce(&self, transition: Transition, user: String, at: u64) {
        let announcement = Announcement {
            transition,
            user,
            at,
        };
        match self.out.try_send(announcement) {
            Ok(()) => {
                metrics::counter!(m::ANNOUNCEMENTS, "type" => transition.as_str()).increment(1)
            }
            Err(_) => {
                metrics::counter!(m::ANNOUNCEMENTS_DROPPED).increment(1);
                tracing::warn!(
                    transition = transition.as_str(),
                    "announcement queue full; announcement dropped"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_offline_is_due_after_its_delay_unless_the_user_comes_back() {
        let book = LocalBook::new(Duration::from_millis(100));
        assert!(book.arrive("ann", 1).await.unwrap());
        book.depart("ann", 10).await.unwrap();
        assert!(book.due(109).await.unwrap().offline.is_empty());
        assert!(
            !book.arrive("ann", 50).await.unwrap(),
            "back within the delay"
        );
        assert!(book.due(1000).await.unwrap().offline.is_empty());
        book.depart("ann", 60).await.unwrap();
        assert_eq!(book.due(160).await.unwrap().offline, [("ann".into(), 60)]);
        assert!(
            book.due(1000).await.unwrap().offline.is_empty(),
            "claimed once"
        );
        assert!(book.arrive("ann", 2000).await.unwrap(), "online again");
    }
}

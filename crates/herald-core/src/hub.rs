//! The hub: routes each event to its streams, keeps history, and keeps idle streams alive.
//!
//! Two operations must never interleave: *dispatch* (append an event to history and queue it to
//! every matching stream) and *register* (compute a new stream's replay from history and add it to
//! the registry). Dispatch holds the registry's read lock, register its write lock, so a stream
//! sees every event exactly once: either in its replay (dispatched before it registered) or live
//! (dispatched after). That is what makes resume race-free while events are being published.
//!
//! Time-based work (heartbeats on idle streams, closing streams whose token expired) is done by
//! one maintenance tick for all streams, not a timer per stream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::{Mutex, RwLock};

use crate::conn::{CloseReason, Conn, DirectWrites, EventStream, Push, QueueLimits, Unregister};
use crate::event::{Frame, HubEvent};
use crate::history::{After, History};
use crate::id::{unix_ms, EventId};
use crate::metrics as m;
use crate::registry::Registry;
use crate::topic::Pattern;

/// Name of the reserved event sent when a resume cannot be served from history.
pub const MISSED_EVENT: &str = "herald.missed";

/// Tunables of a hub. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events kept for resume.
    pub history: usize,
    /// Heartbeat comment interval on idle streams.
    pub heartbeat: Duration,
    /// Reconnection delay suggested to clients (`retry:`), in milliseconds.
    pub retry_ms: u64,
    /// Per-stream queue bounds; past them a stream is closed as a slow consumer.
    pub queue: QueueLimits,
    /// Streams allowed on this node (None = unlimited).
    pub max_connections: Option<usize>,
    /// Streams allowed per user on this node (None = unlimited).
    pub max_connections_per_user: Option<usize>,
    /// Streams end after 90-100% of this (random per stream, so reconnects spread out) with a
    /// reconnect hint; clients resume where they were. Rebalances long-lived streams across
    /// nodes and bounds how long any credential check stays valid. None = forever.
    pub max_stream_lifetime: Option<Duration>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history: 10_000,
            heartbeat: Duration::from_secs(15),
            retry_ms: 3_000,
            queue: QueueLimits {
                max_frames: 1_024,
                max_bytes: 4 << 20,
            },
            max_connections: None,
            max_connections_per_user: None,
            max_stream_lifetime: None,
        }
    }
}

/// Who a new stream belongs to and what it wants.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    /// The authenticated user, or `None` for an anonymous stream.
    pub user: Option<String>,
    /// Topic subscriptions (already authorised by the caller).
    pub topics: Vec<Pattern>,
    /// The client's `Last-Event-ID`, if resuming.
    pub last_event_id: Option<String>,
    /// Unix seconds at which the stream must close (token expiry).
    pub expires_at: Option<u64>,
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("this node is at its connection limit")]
    TooManyConnections,
    #[error("this user has too many open streams")]
    TooManyForUser,
    #[error("the hub is shutting down")]
    ShuttingDown,
    #[error("history is unavailable: {0}")]
    Broker(String),
}

/// Counts for dashboards and the console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    pub connections: usize,
    pub users: usize,
    pub topics: usize,
    pub subscriptions: usize,
    pub last_event_id: EventId,
}

/// What the caller of [`Hub::register`] knows about history older than the hub's window.
pub(crate) enum Older {
    /// Not asked yet: register answers `NeedOlder` if the resume point is that old.
    NotFetched,
    /// The broker keeps nothing older: the client missed events.
    Unavailable,
    Fetched(OlderEvents),
}

/// Events older than the hub's own window, fetched from a broker's shared history.
pub(crate) struct OlderEvents {
    pub after: EventId,
    pub events: Vec<Arc<HubEvent>>,
    /// The fetched range ends here (inclusive); it must reach the hub's floor to be usable.
    pub upto: EventId,
}

pub struct Hub {
    config: HubConfig,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) history: Mutex<History>,
    next_conn_id: AtomicU64,
    /// Coarse clock (Unix seconds), advanced by the maintenance tick.
    clock: AtomicU64,
    shutting_down: AtomicBool,
    heartbeat: Arc<Frame>,
}

/// Outcome of trying to register a resuming stream.
pub(crate) enum Registered {
    Stream(EventStream),
    /// The resume point is older than the hub's window: fetch (after, floor] and try again.
    NeedOlder {
        after: EventId,
        floor: EventId,
    },
}

impl Hub {
    /// A hub whose sequence starts now (ids before this instant are unknown to it).
    pub fn new(config: HubConfig) -> Arc<Self> {
        Self::starting_at(config, EventId::new(unix_ms(), 0))
    }

    /// A hub whose history starts after `start` (brokers with shared history pass their position).
    pub fn starting_at(config: HubConfig, start: EventId) -> Arc<Self> {
        Arc::new(Self {
            history: Mutex::new(History::new(config.history, start)),
            config,
            registry: RwLock::new(Registry::default()),
            next_conn_id: AtomicU64::new(1),
            clock: AtomicU64::new(unix_ms() / 1000),
            shutting_down: AtomicBool::new(false),
            heartbeat: Frame::control(&b":\n\n"[..]),
        })
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The id of the newest event dispatched here.
    pub fn last_event_id(&self) -> EventId {
        self.history.lock().last()
    }

    /// Routes one event to every stream it reaches and records it in history.
    ///
    /// Brokers call this once per event, in id order, never concurrently with itself.
    pub fn dispatch(&self, event: Arc<HubEvent>) {
        let mut writes = DirectWrites::default();
        self.dispatch_claiming(&event, &mut writes);
        writes.write();
    }

    /// [`Hub::dispatch`], leaving the socket writes it claims to the caller, who does them once
    /// its own locks are released (see [`crate::conn`]).
    pub(crate) fn dispatch_claiming(&self, event: &Arc<HubEvent>, writes: &mut DirectWrites) {
        let now = self.clock.load(Ordering::Relaxed);
        let registry = self.registry.read();
        self.history.lock().push(event.clone());
        // Events for users reach a stream or a few: their sockets are written directly.
        // Fan-out events are queued so that each stream's writer coalesces bursts.
        let direct = event.targets.topics.is_empty() && !event.targets.users.is_empty();
        registry.for_each_recipient(&event.targets, |conn| {
            if !direct {
                conn.push(&event.frame, now);
            } else if conn.claim_or_push(&event.frame, now) == Push::Claimed {
                writes.claimed(conn, &event.frame);
            }
        });
    }

    /// Records that the events after the last one dispatched here, up to and including `upto`,
    /// are lost to this node (a broker fell further behind than its shared history reaches).
    ///
    /// Every open stream gets `herald.missed` (reason `history_expired`) followed by an id-only
    /// block at `upto`, so clients refetch their state and a later resume starts from here. The
    /// history window restarts after `upto`: resume points before it are too old. Like
    /// [`Hub::dispatch`], brokers call this in order and never concurrently with dispatch.
    pub fn dispatch_gap(&self, upto: EventId) {
        let now = self.clock.load(Ordering::Relaxed);
        let registry = self.registry.read();
        let mut history = self.history.lock();
        let last = history.last().to_string();
        history.restart(upto);
        drop(history);
        let mut bytes = BytesMut::with_capacity(128);
        append_missed(&mut bytes, "history_expired", Some(&last));
        bytes.extend_from_slice(format!("id: {upto}\n\n").as_bytes());
        let frame = Frame::control(bytes.freeze());
        for conn in registry.all() {
            conn.push(&frame, now);
        }
    }

    pub fn stats(&self) -> HubStats {
        let registry = self.registry.read();
        HubStats {
            connections: registry.len(),
            users: registry.user_count(),
            topics: registry.topic_count(),
            subscriptions: registry.subscriptions(),
            last_event_id: self.last_event_id(),
        }
    }

    /// Registers a stream: queues its preamble and replay, then adds it to the registry, all
    /// atomically with respect to [`Hub::dispatch`].
    pub(crate) fn register(
        self: &Arc<Self>,
        request: &SubscribeRequest,
        older: Older,
    ) -> Result<Registered, SubscribeError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(SubscribeError::ShuttingDown);
        }
        let resume_from = request.last_event_id.as_deref();
        let mut registry = self.registry.write();
        self.check_limits(&registry, request.user.as_deref())?;

        let conn = Arc::new(Conn::new(
            self.next_conn_id.fetch_add(1, Ordering::Relaxed),
            request.user.as_deref().map(Arc::from),
            request.topics.clone().into(),
            request.expires_at,
            self.config.queue,
            self.clock.load(Ordering::Relaxed),
        ));
        if let Some(lifetime) = self.config.max_stream_lifetime {
            let secs = lifetime.as_secs().max(1);
            let early = rand::random_range(0..=secs / 10);
            let at = self.clock.load(Ordering::Relaxed) + secs - early;
            conn.recycle_at.store(at, Ordering::Relaxed);
        }
        let history = self.history.lock();
        let mut preamble = BytesMut::with_capacity(256);
        preamble
            .extend_from_slice(format!(": herald\nretry: {}\n\n", self.config.retry_ms).as_bytes());

        match resume_from.map(|text| (text, text.parse::<EventId>())) {
            None => {}
            Some((_, Ok(id))) => match history.after(id) {
                After::Events(events) => {
                    metrics::counter!(m::REPLAY_HITS).increment(1);
                    append_replay(&mut preamble, &conn, events);
                }
                After::TooOld => match older {
                    Older::NotFetched => {
                        return Ok(Registered::NeedOlder {
                            after: id,
                            floor: history.floor(),
                        })
                    }
                    Older::Fetched(older) if older.after == id && older.upto >= history.floor() => {
                        metrics::counter!(m::REPLAY_HITS).increment(1);
                        let floor = history.floor();
                        let fetched = older.events.iter().filter(|e| e.id > id && e.id <= floor);
                        append_replay(&mut preamble, &conn, fetched);
                        if let After::Events(events) = history.after(floor) {
                            append_replay(&mut preamble, &conn, events);
                        }
                    }
                    Older::Fetched(_) | Older::Unavailable => {
                        append_missed(&mut preamble, "history_expired", resume_from)
                    }
                },
                After::Unknown => append_missed(&mut preamble, "unknown_id", resume_from),
            },
            Some((_, Err(_))) => append_missed(&mut preamble, "unknown_id", resume_from),
        }
        // Tell the client how far it is caught up, so a reconnect resumes from here even if no
        // event reaches this stream first. An id-only block sets lastEventId without an event.
        preamble.extend_from_slice(format!("id: {}\n\n", history.last()).as_bytes());
        drop(history);

        conn.push(
            &Frame::control(preamble.freeze()),
            self.clock.load(Ordering::Relaxed),
        );
        registry.insert(conn.clone());
        metrics::counter!(m::STREAMS_OPENED).increment(1);
        metrics::gauge!(m::CONNECTIONS).set(registry.len() as f64);
        metrics::gauge!(m::SUBSCRIPTIONS).set(registry.subscriptions() as f64);
        let unregister: Arc<dyn Unregister> = self.clone();
        Ok(Registered::Stream(EventStream::new(conn, unregister)))
    }

    fn check_limits(&self, registry: &Registry, user: Option<&str>) -> Result<(), SubscribeError> {
        let rejected = if self
            .config
            .max_connections
            .is_some_and(|max| registry.len() >= max)
        {
            Some(SubscribeError::TooManyConnections)
        } else if let (Some(max), Some(user)) = (self.config.max_connections_per_user, user) {
            (registry.streams_of(user) >= max).then_some(SubscribeError::TooManyForUser)
        } else {
            None
        };
        match rejected {
            Some(error) => {
                metrics::counter!(m::STREAMS_REJECTED).increment(1);
                Err(error)
            }
            None => Ok(()),
        }
    }

    /// One maintenance step: advance the clock, close expired streams, heartbeat idle ones.
    pub fn tick(&self) {
        let now = unix_ms() / 1000;
        self.clock.store(now, Ordering::Relaxed);
        let idle_after = self.config.heartbeat.as_secs().max(1);
        let registry = self.registry.read();
        for conn in registry.all() {
            let recycle_at = conn.recycle_at.load(Ordering::Relaxed);
            if conn.expires_at.is_some_and(|at| at <= now) {
                conn.close(CloseReason::TokenExpired);
            } else if recycle_at != 0 && recycle_at <= now {
                conn.push(&self.reconnect_hint("stream lifetime reached"), now);
                conn.close(CloseReason::Lifetime);
            } else if now.saturating_sub(conn.last_activity.load(Ordering::Relaxed)) >= idle_after {
                conn.push(&self.heartbeat, now);
            }
        }
    }

    /// Runs [`Hub::tick`] every second until the hub is dropped.
    pub fn spawn_maintenance(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match hub.upgrade() {
                    Some(hub) => hub.tick(),
                    None => return,
                }
            }
        })
    }

    /// Refuses new streams and ends every open one after a reconnect hint.
    ///
    /// Each stream gets a `retry:` of the configured delay plus random jitter of up to the same
    /// again, so clients spread their reconnects instead of stampeding the remaining nodes.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let now = self.clock.load(Ordering::Relaxed);
        let registry = self.registry.read();
        for conn in registry.all() {
            conn.push(&self.reconnect_hint("shutting down"), now);
            conn.close(CloseReason::Shutdown);
        }
    }

    /// A comment saying why, and a `retry:` of the usual delay plus up to as much again at
    /// random, so the streams a hub ends together do not all come back in the same instant.
    fn reconnect_hint(&self, why: &str) -> Arc<Frame> {
        let jitter = rand::random_range(0..=self.config.retry_ms);
        let hint = format!(": {why}\nretry: {}\n\n", self.config.retry_ms + jitter);
        Frame::control(hint)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

impl Unregister for Hub {
    fn unregister(&self, conn: &Arc<Conn>) {
        let mut registry = self.registry.write();
        registry.remove(conn);
        metrics::gauge!(m::CONNECTIONS).set(registry.len() as f64);
        metrics::gauge!(m::SUBSCRIPTIONS).set(registry.subscriptions() as f64);
    }
}

fn append_replay<'a>(
    out: &mut BytesMut,
    conn: &Conn,
    events: impl Iterator<Item = &'a Arc<HubEvent>>,
) {
    for event in events {
        if event.targets.reaches(conn.user.as_deref(), &conn.patterns) {
            out.extend_from_slice(&event.frame.bytes);
        }
    }
}

fn append_missed(out: &mut BytesMut, reason: &str, last_event_id: Option<&str>) {
    metrics::counter!(m::REPLAY_MISSES).increment(1);
    // Echo at most 128 chars of what the client sent; it is client-controlled input.
    let echoed: Option<String> = last_event_id.map(|s| s.chars().take(128).collect());
    let data = serde_json::json!({ "reason": reason, "lastEventId": echoed }).to_string();
    let mut bytes = Vec::with_capacity(data.len() + 40);
    let event = herald_proto::Event::new(data).event(MISSED_EVENT);
    if event.encode_into(&mut bytes).is_ok() {
        out.extend_from_slice(&bytes);
    }
}

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
//!
//! This file is a little over 500 lines on purpose: dispatch and register are the two halves of
//! that locking rule, and they stay side by side so a reader can check it in one place. What is
//! not under the rule lives elsewhere (history, registry, retained values, the stream's queue).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::announce::UserChanges;
use crate::broker::Broker;
use crate::conn::{
    CloseReason, Conn, DirectWrites, EventStream, Opening, QueueLimits, Replay, StreamEnd,
    StreamEndHook, PIECE_BYTES,
};
use crate::defaults;
use crate::event::{Frame, HubEvent};
use crate::history::{After, History, HistoryBounds};
use crate::id::{unix_ms, EventId};
use crate::metrics as m;
use crate::publication::Retain;
use crate::registry::Registry;
use crate::retained::{Retained, RetainedLimits};
use crate::topic::Pattern;

/// Name of the reserved event sent when a resume cannot be served from history.
pub use herald_proto::MISSED_EVENT;

/// Tunables of a hub. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events kept for resume.
    pub history: usize,
    /// Bytes of events kept for resume (what each event costs: [`HubEvent::cost`]).
    pub history_bytes: usize,
    /// Events older than this leave history (None = no age limit).
    pub history_ttl: Option<Duration>,
    /// Bounds of the retained values ([`crate::retained`]).
    pub retained: RetainedLimits,
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
    /// Called once for every stream that ends.
    pub on_stream_end: Option<StreamEndHook>,
}

impl HubConfig {
    fn history_bounds(&self) -> HistoryBounds {
        HistoryBounds {
            events: self.history,
            bytes: self.history_bytes,
            ttl_ms: self.history_ttl.map(|ttl| ttl.as_millis() as u64),
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history: defaults::HISTORY,
            history_bytes: defaults::HISTORY_BYTES as usize,
            history_ttl: None,
            retained: RetainedLimits {
                values: defaults::RETAINED_VALUES,
                bytes: defaults::RETAINED_BYTES as usize,
            },
            heartbeat: Duration::from_secs(defaults::HEARTBEAT_SECS),
            retry_ms: defaults::RETRY_MS,
            queue: QueueLimits {
                max_frames: defaults::QUEUE_FRAMES,
                max_bytes: defaults::QUEUE_BYTES,
            },
            max_connections: None,
            max_connections_per_user: None,
            max_stream_lifetime: None,
            on_stream_end: None,
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
    /// A filtered stream ([`crate::labels`]): labelled events its filter accepts, nothing else.
    /// Such a stream may resume from a wire id, and gets no retained values.
    pub filter: Option<Arc<dyn crate::labels::StreamFilter>>,
    /// With no `last_event_id`: replay all of the hub's history window first (Mercure's
    /// `earliest`).
    pub from_earliest: bool,
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

pub struct Hub {
    config: HubConfig,
    pub(crate) registry: RwLock<Registry>,
    pub(crate) history: Mutex<History>,
    /// Taken after `history`, like it under the registry's lock.
    pub(crate) retained: Mutex<Retained>,
    next_conn_id: AtomicU64,
    /// Coarse clock (Unix seconds), advanced by the maintenance tick.
    clock: AtomicU64,
    shutting_down: AtomicBool,
    heartbeat: Arc<Frame>,
    pub(crate) user_changes: Arc<UserChanges>,
}

/// What [`Hub::replay_piece`] found.
pub(crate) enum Piece {
    /// Every event up to `to` has been looked at; `scan_limited` if the piece stopped because
    /// it looked at [`crate::conn::PIECE_SCAN`] events.
    Advanced { to: EventId, scan_limited: bool },
    /// The events right after the position are no longer in the hub's window (which now starts
    /// after `floor`): they must come from the broker.
    Older { floor: EventId },
}

impl Hub {
    /// A hub whose sequence starts now (ids before this instant are unknown to it).
    pub fn new(config: HubConfig) -> Arc<Self> {
        Self::starting_at(config, EventId::new(unix_ms(), 0))
    }

    /// A hub whose history starts after `start` (brokers with shared history pass their position).
    pub fn starting_at(config: HubConfig, start: EventId) -> Arc<Self> {
        Arc::new(Self {
            history: Mutex::new(History::new(config.history_bounds(), start)),
            retained: Mutex::new(Retained::new(config.retained)),
            config,
            registry: RwLock::new(Registry::default()),
            next_conn_id: AtomicU64::new(1),
            clock: AtomicU64::new(unix_ms() / 1000),
            shutting_down: AtomicBool::new(false),
            heartbeat: Frame::control(herald_proto::HEARTBEAT),
            user_changes: Arc::default(),
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
        // The event's own time (its id's milliseconds: the publish, or Redis's clock) stands
        // for now: a clock read per event saved; the tick expires by the real clock.
        self.history.lock().push(event.clone(), event.id.ms);
        if event.retain != Retain::No {
            let evicted = self.retained.lock().apply(event);
            if evicted > 0 {
                metrics::counter!(m::RETAINED_EVICTED).increment(evicted as u64);
            }
        }
        if !event.is_delivered() {
            return;
        }
        if let Some(labels) = &event.labels {
            registry.for_each_accepting(labels, |conn| {
                conn.push(&event.frame, now);
            });
            return;
        }
        // Events for users reach a stream or a few: their sockets are written directly.
        // Fan-out events are queued so that each stream's writer coalesces bursts.
        let direct = event.targets.topics.is_empty() && !event.targets.users.is_empty();
        registry.for_each_recipient(&event.targets, |conn| {
            if direct {
                writes.offer(conn, &event.frame, now);
            } else {
                conn.push(&event.frame, now);
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
        m::replay_missed();
        let mut bytes = Vec::with_capacity(128);
        herald_proto::write_missed(&mut bytes, "history_expired", Some(&last));
        // An id Herald assigned is always a valid SSE id.
        let _ = herald_proto::write_id_only(&mut bytes, &upto.text());
        let frame = Frame::control(bytes);
        for conn in registry.all() {
            conn.push(&frame, now);
        }
    }

    /// The hub id of the newest event in the history window whose wire id is `wire_id`.
    pub fn find_wire_id(&self, wire_id: &str) -> Option<EventId> {
        self.history.lock().find_wire_id(wire_id)
    }

    /// Can a stream resume exactly after `text` (a hub id, or a wire id), from what the history
    /// window holds?
    pub fn holds_resume_point(&self, text: &str) -> bool {
        let history = self.history.lock();
        let id = history.find_wire_id(text).or_else(|| text.parse().ok());
        id.is_some_and(|id| matches!(history.after(id), After::Events(_)))
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

    /// Registers a stream and fixes what its opening replays, atomically with respect to
    /// [`Hub::dispatch`]: every event is either in the range the opening replays (dispatched
    /// before) or queued live (after). Cheap whatever the range: the bytes are read later, as
    /// the stream's writer asks for them ([`crate::conn::Opening`]). History older than the
    /// hub's window comes from `older`, the broker, if it keeps any.
    pub(crate) fn register(
        self: &Arc<Self>,
        request: &SubscribeRequest,
        older: Option<Arc<dyn Broker>>,
    ) -> Result<EventStream, SubscribeError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(SubscribeError::ShuttingDown);
        }
        let now = self.clock.load(Ordering::Relaxed);
        let mut registry = self.registry.write();
        self.check_limits(&registry, request.user.as_deref())?;

        let conn = Arc::new(
            Conn::new(
                self.next_conn_id.fetch_add(1, Ordering::Relaxed),
                request.user.as_deref().map(Arc::from),
                request.topics.clone().into(),
                request.expires_at,
                self.config.queue,
                now,
            )
            .with_filter(request.filter.clone()),
        );
        if let Some(lifetime) = self.config.max_stream_lifetime {
            let secs = lifetime.as_secs().max(1);
            let early = rand::random_range(0..=secs / 10);
            conn.recycle_at.store(now + secs - early, Ordering::Relaxed);
        }
        let history = self.history.lock();
        let mut first = Vec::with_capacity(64);
        herald_proto::write_opening(&mut first, self.config.retry_ms);
        let position = history.last();
        let mut retained = Vec::new();
        let replay = match request.last_event_id.as_deref() {
            None if request.from_earliest => {
                let floor = history.floor();
                Some(Replay::new(floor, position, "earliest", None))
            }
            // Filtered streams have no retained values.
            None if conn.filter.is_some() => None,
            // A fresh stream starts from the retained values (its initial state).
            None => {
                retained = self
                    .retained
                    .lock()
                    .for_stream(conn.user.as_deref(), &conn.patterns);
                None
            }
            Some(text) => match conn
                .filter
                .as_ref()
                .and_then(|_| history.find_wire_id(text))
                .map_or_else(|| text.parse::<EventId>(), Ok)
                .map(|id| (id, history.after(id)))
            {
                Ok((id, After::Events(_))) => {
                    metrics::counter!(m::REPLAY_HITS).increment(1);
                    Some(Replay::new(id, position, text, None))
                }
                // Older than the window: the broker may have it (the opening finds out).
                Ok((id, After::TooOld)) => Some(Replay::new(id, position, text, older)),
                Ok((_, After::Unknown)) | Err(_) => {
                    m::replay_missed();
                    herald_proto::write_missed(&mut first, "unknown_id", Some(text));
                    None
                }
            },
        };
        drop(history);

        registry.insert(conn.clone());
        if let Some(user) = conn.user.as_ref().filter(|u| registry.streams_of(u) == 1) {
            self.user_changes.note(user);
        }
        metrics::counter!(m::STREAMS_OPENED).increment(1);
        metrics::gauge!(m::CONNECTIONS).set(registry.len() as f64);
        metrics::gauge!(m::SUBSCRIPTIONS).set(registry.subscriptions() as f64);
        let retained = retained.into_iter().map(|e| e.frame.clone()).collect();
        Ok(EventStream::new(
            conn,
            self.clone(),
            Opening::new(first, retained, replay, position),
        ))
    }

    /// Appends to `frames` the frames of the events after `after`, up to and including `upto`,
    /// that reach `conn`, until they hold [`PIECE_BYTES`] or [`crate::conn::PIECE_SCAN`] events
    /// were looked at. Holds the history lock only for that long.
    pub(crate) fn replay_piece(
        &self,
        after: EventId,
        upto: EventId,
        conn: &Conn,
        frames: &mut Vec<Arc<Frame>>,
        bytes: &mut usize,
    ) -> Piece {
        let history = self.history.lock();
        let After::Events(events) = history.after(after) else {
            return Piece::Older {
                floor: history.floor(),
            };
        };
        let mut scanned = 0;
        for event in events {
            if event.id > upto {
                break;
            }
            scanned += 1;
            if conn.is_reached_by(event) {
                *bytes += event.frame.bytes.len();
                frames.push(event.frame.clone());
            }
            if *bytes >= PIECE_BYTES || scanned >= crate::conn::PIECE_SCAN {
                return Piece::Advanced {
                    to: event.id,
                    scan_limited: *bytes < PIECE_BYTES,
                };
            }
        }
        // Every event of the window up to `upto` has been looked at.
        Piece::Advanced {
            to: upto,
            scan_limited: false,
        }
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
        let now_ms = unix_ms();
        let now = now_ms / 1000;
        self.clock.store(now, Ordering::Relaxed);
        let idle_after = self.config.heartbeat.as_secs().max(1);
        let registry = self.registry.read();
        {
            let mut history = self.history.lock();
            history.expire(now_ms);
            metrics::gauge!(m::HISTORY_EVENTS).set(history.len() as f64);
            metrics::gauge!(m::HISTORY_BYTES).set(history.bytes() as f64);
            let retained = self.retained.lock();
            metrics::gauge!(m::RETAINED_VALUES).set(retained.len() as f64);
            metrics::gauge!(m::RETAINED_BYTES).set(retained.bytes() as f64);
        }
        for conn in registry.all() {
            let recycle_at = conn.recycle_at.load(Ordering::Relaxed);
            if conn.expires_at.is_some_and(|at| at <= now) {
                conn.close(CloseReason::TokenExpired);
            } else if recycle_at != 0 && recycle_at <= now {
                conn.push(&self.reconnect_hint("stream lifetime reached"), now);
                conn.close(CloseReason::Lifetime);
            } else if now.saturating_sub(conn.queue.last_activity.load(Ordering::Relaxed))
                >= idle_after
            {
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

    /// Fills the retained values from a broker's shared store (a node starting on a cluster
    /// that already holds some), before the first dispatch. For brokers.
    pub fn restore_retained(&self, values: impl IntoIterator<Item = (String, Arc<HubEvent>)>) {
        let mut retained = self.retained.lock();
        for (field, event) in values {
            retained.restore(field, event);
        }
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
        let mut hint = Vec::with_capacity(why.len() + 24);
        herald_proto::write_reconnect_hint(&mut hint, why, self.config.retry_ms + jitter);
        Frame::control(hint)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

impl Hub {
    /// Takes an ended stream out of the registry and reports its end.
    pub(crate) fn unregister(&self, conn: &Arc<Conn>) {
        let mut registry = self.registry.write();
        registry.remove(conn);
        if let Some(user) = conn.user.as_ref().filter(|u| registry.streams_of(u) == 0) {
            self.user_changes.note(user);
        }
        metrics::gauge!(m::CONNECTIONS).set(registry.len() as f64);
        metrics::gauge!(m::SUBSCRIPTIONS).set(registry.subscriptions() as f64);
        drop(registry);
        if let Some(hook) = &self.config.on_stream_end {
            (hook.0)(&StreamEnd {
                id: conn.id,
                user: conn.user.as_deref(),
                reason: conn.queue.close_reason().unwrap_or(CloseReason::ClientGone),
                duration: Duration::from_millis(unix_ms().saturating_sub(conn.opened_ms)),
            });
        }
    }
}

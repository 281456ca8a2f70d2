//! Concurrent publishes share round trips to Redis.
//!
//! A publish through Redis costs more per call than per event: the command's parsing and the
//! script's start on Redis, a reply to parse, and a wake-up of each process on the way. So
//! while one call of the append script is out, the publishes that arrive queue their encoded
//! batches ([`Group`]), and the next call carries all of them; its answer has one part per
//! group.
//!
//! * **A lone publish is never delayed.** When fewer than [`CALLS_IN_FLIGHT`] calls are out, a
//!   publish sends its own call at once, from its own task: no queue, no hand-over, nothing
//!   more than before. Only what arrives while that many are out waits, for the first of them
//!   to come back at most, and then goes in the next call, sent by a task that keeps sending
//!   while anything is queued.
//! * **The same guarantees per request.** Each group is one request's batch, appended
//!   contiguously and all-or-nothing, with its own idempotency key; a call is one script run,
//!   so groups are never interleaved. A failed call fails each of its requests with the same
//!   error (503); an idempotency key makes the retry safe, as before. A request given up on
//!   (its client left, or it waited too long) before its call is sent is left out of it.
//! * **Bounded.** At most [`CALLS_IN_FLIGHT`] calls are out, each of at most
//!   [`MAX_GROUPS_PER_CALL`] groups and about [`MAX_CALL_BYTES`] (more only for a single
//!   request over that, which `--max-body-bytes` bounds). The queue holds the encoded form of requests in flight, whose
//!   bodies are held anyway, so the number of open publish requests bounds it. A queued
//!   request waits at most three command timeouts for its answer.
//! * **Replicated before acknowledged.** With `--redis-min-replicas`, each call is followed by
//!   one `WAIT` on the same connection, for all of its groups at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use herald_core::broker::BrokerError;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::append::{Appended, Appender, Group};
use crate::broker::unavailable;
use crate::metrics as m;
use crate::shared_connection::{Request, SharedConnection};

/// Calls out at once at most. More requests than this at once share calls; fewer are each sent
/// at once, pipelined on the connection.
pub const CALLS_IN_FLIGHT: usize = 4;
/// Groups (publish requests) in one call at most.
pub const MAX_GROUPS_PER_CALL: usize = 256;
/// Encoded bytes in one call, about (a call runs as one script: keep each short for Redis).
pub const MAX_CALL_BYTES: usize = 1 << 20;

/// Where a node's publishes go to Redis.
pub(crate) struct PublishQueue {
    inner: Arc<Inner>,
}

struct Inner {
    sender: Sender,
    state: Mutex<State>,
    /// How long a queued request waits for its answer at most.
    patience: Duration,
}

#[derive(Default)]
struct State {
    /// Calls out (or about to be); whoever sends one also sends what queues meanwhile.
    calls_out: usize,
    queued: VecDeque<Pending>,
}

struct Pending {
    group: Group,
    answer: oneshot::Sender<Result<Appended, BrokerError>>,
}

/// What a call needs to be sent and acknowledged.
pub(crate) struct Sender {
    pub conn: Arc<SharedConnection>,
    pub appender: Appender,
    pub command_timeout: Duration,
    /// Replicas that must hold a call's events before its requests are answered (`WAIT`).
    pub min_replicas: u32,
}

impl PublishQueue {
    pub fn new(sender: Sender) -> Self {
        let patience = sender.command_timeout * 3;
        Self {
            inner: Arc::new(Inner {
                sender,
                state: Mutex::new(State::default()),
                patience,
            }),
        }
    }

    /// Appends `group`, in a call of its own if fewer than [`CALLS_IN_FLIGHT`] are out, else in
    /// a later one, and answers with what the script did for it.
    pub async fn append(&self, group: Group) -> Result<Appended, BrokerError> {
        let (answer, answered) = oneshot::channel();
        let leads = {
            let mut state = self.inner.state.lock();
            if state.calls_out >= CALLS_IN_FLIGHT {
                state.queued.push_back(Pending { group, answer });
                None
            } else {
                state.calls_out += 1;
                Some(group)
            }
        };
        if let Some(group) = leads {
            // This request sends the call; whatever queues meanwhile is sent after it, even if
            // this request is dropped halfway (its client left).
            let _next = SendQueuedAfter(self.inner.clone());
            let answers = self.inner.sender.send(vec![group]).await?;
            return answers
                .into_iter()
                .next()
                .ok_or_else(|| BrokerError("the append script answered nothing".into()));
        }
        let gone = || BrokerError("Redis: the node's publish queue has stopped".into());
        match tokio::time::timeout(self.inner.patience, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(BrokerError(
                "Redis: no answer within three command timeouts (--redis-command-timeout-ms); \
                 the events may still be appended: retry with the same Idempotency-Key"
                    .into(),
            )),
        }
    }
}

/// Dropped when a request's own call is done (or abandoned): starts the task that sends what
/// queued meanwhile, or marks the queue idle.
struct SendQueuedAfter(Arc<Inner>);

impl Drop for SendQueuedAfter {
    fn drop(&mut self) {
        let Some(call) = self.0.next_call() else {
            return;
        };
        // Outside a runtime (it is shutting down) nothing can be sent: dropping the requests
        // answers each of them that the queue has stopped.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.0.clone();
        runtime.spawn(async move {
            let mut call = call;
            loop {
                inner.send_and_answer(call).await;
                match inner.next_call() {
                    Some(next) => call = next,
                    None => return,
                }
            }
        });
    }
}

impl Inner {
    /// The requests for the next call, or `None` (and the queue idle) if nothing is queued.
    /// Requests given up on are left out.
    fn next_call(&self) -> Option<Vec<Pending>> {
        let mut state = self.state.lock();
        let mut call = Vec::new();
        let mut bytes = 0;
        while call.len() < MAX_GROUPS_PER_CALL && (bytes < MAX_CALL_BYTES || call.is_empty()) {
            let Some(next) = state.queued.pop_front() else {
                break;
            };
            if next.answer.is_closed() {
                continue;
            }
            bytes += next.group.bytes();
            call.push(next);
        }
        if call.is_empty() {
            state.calls_out -= 1;
            return None;
        }
        Some(call)
    }

    async fn send_and_answer(&self, call: Vec<Pending>) {
        let (groups, answers): (Vec<Group>, Vec<_>) =
            call.into_iter().map(|p| (p.group, p.answer)).unzip();
        match self.sender.send(groups).await {
            Ok(appended) => {
                for (answer, appended) in answers.into_iter().zip(appended) {
                    let _ = answer.send(Ok(appended));
                }
            }
            Err(error) => {
                for answer in answers {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }
}

impl Sender {
    /// Sends one call of `groups` and reads what the script did for each.
    async fn send(&self, groups: Vec<Group>) -> Result<Vec<Appended>, BrokerError> {
        metrics::counter!(m::PUBLISH_CALLS).increment(1);
        metrics::counter!(m::PUBLISH_REQUESTS).increment(groups.len() as u64);
        let count = groups.len();
        let invocation = self.appender.invocation(&groups, None);
        drop(groups);
        let appended = match self
            .conn
            .call::<Vec<Vec<String>>>(Request::Script(&invocation), Duration::ZERO)
            .await?
        {
            Ok(reply) => Appended::from_reply(reply, count).map_err(BrokerError)?,
            Err(error) => return Err(unavailable(error)),
        };
        if self.min_replicas > 0 {
            self.wait_for_replicas().await?;
        }
        Ok(appended)
    }

    /// Waits until `min_replicas` replicas hold every write this node made so far, the call
    /// just sent included (`WAIT` covers the connection's earlier writes), within three
    /// quarters of the command timeout. The events are in the stream either way: a publisher
    /// told 503 retries with the same `Idempotency-Key` and gets the same ids.
    async fn wait_for_replicas(&self) -> Result<(), BrokerError> {
        // WAIT answers by its own timeout, with how many replicas it heard from: within the
        // connection's own response timeout (the command timeout), so that answer arrives.
        let timeout_ms = (self.command_timeout.as_millis() as u64 * 3 / 4).max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.min_replicas).arg(timeout_ms);
        let reached: u64 = self
            .conn
            .call(Request::Cmd(&wait), Duration::ZERO)
            .await?
            .map_err(unavailable)?;
        if reached < u64::from(self.min_replicas) {
            metrics::counter!(m::REPLICA_WAITS_FAILED).increment(1);
            return Err(BrokerError(format!(
                "only {reached} of the {} Redis replicas required (--redis-min-replicas) \
                 confirmed this publish within {timeout_ms} ms; it may still be delivered: \
                 retry with the same Idempotency-Key",
                self.min_replicas
            )));
        }
        Ok(())
    }
}

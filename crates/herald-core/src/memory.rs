//! The embedded broker: ids, history and fan-out inside one process.
//!
//! Publishing takes one lock, assigns ids and dispatches to the hub under it, so events reach
//! streams in exactly the order of their ids (direct socket writes are claimed in that order and
//! done after the lock). History is the hub's own window: nothing older
//! exists, so resume points before it get `herald.missed`. Idempotency keys are checked and
//! remembered under the same lock, so two publishes with one key cannot both go through.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::broker::{Broker, BrokerError};
use crate::conn::DirectWrites;
use crate::event::HubEvent;
use crate::hub::Hub;
use crate::id::{unix_us, EventId};
use crate::idempotency::{IdempotencyKey, Published, Remembered};
use crate::publication::Batch;

pub struct MemoryBroker {
    hub: Arc<Hub>,
    state: Mutex<State>,
}

struct State {
    /// The last id assigned.
    last: EventId,
    remembered: Remembered,
}

impl MemoryBroker {
    pub fn new(hub: Arc<Hub>) -> Self {
        let state = Mutex::new(State {
            last: hub.last_event_id(),
            remembered: Remembered::default(),
        });
        Self { hub, state }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(
        &self,
        batch: &Batch,
        once: Option<&IdempotencyKey>,
    ) -> Result<Published, BrokerError> {
        // One clock read for the ids and the latency stamp; the monotonic one only when an
        // idempotency key needs it.
        let now_us = unix_us();
        let now_ms = now_us / 1000;
        let now = once.map(|_| Instant::now());
        let mut writes = DirectWrites::default();
        let mut ids = Vec::with_capacity(batch.len());
        let mut state = self.state.lock();
        if let Some(ids) = once
            .zip(now)
            .and_then(|(key, now)| state.remembered.answer(key, now))
        {
            return Ok(Published {
                ids,
                repeated: true,
            });
        }
        for publication in batch.iter() {
            let id = state.last.next_after(now_ms);
            state.last = id;
            let event = Arc::new(HubEvent::new(id, publication, now_us));
            self.hub.dispatch_claiming(&event, &mut writes);
            ids.push(id);
        }
        if let Some((key, now)) = once.zip(now) {
            state.remembered.remember(key, ids.clone(), now);
        }
        // Socket writes happen after the lock, so other publishers don't wait behind them.
        drop(state);
        writes.write();
        Ok(Published {
            ids,
            repeated: false,
        })
    }

    async fn history(
        &self,
        _after: EventId,
        _upto: EventId,
        _limit: usize,
    ) -> Result<Option<Vec<Arc<HubEvent>>>, BrokerError> {
        Ok(None)
    }

    fn is_ready(&self) -> bool {
        true
    }
}

//! Direct writes: the publishing thread writes an event straight to its stream's socket.
//!
//! A hand-rolled SSE server writes each event to the socket as it happens, with one syscall; a
//! hub that queues the event and wakes a writer task pays a wake-up and a task hop per event.
//! So when an event is for users (not a fan-out to topics or everyone) and a recipient's stream
//! has a socket attached, nothing queued and nothing being written, the dispatcher *claims* the
//! socket ([`Claim`]) and the publisher writes the frame itself with one non-blocking write.
//!
//! The protocol, enforced by types rather than by convention:
//!
//! * Claims are taken during dispatch, under the broker's and registry's locks, so they follow id
//!   order; the writes happen after those locks are released ([`DirectWrites`]), so publishers on
//!   other threads never wait behind a syscall. While a claim is open, later frames queue and the
//!   stream's writer waits (see [`super::queue`]).
//! * A [`Claim`] is written and released when it is dropped, so no path can leave a stream
//!   waiting on a claim that is never written.
//! * What the socket does not take stays with the stream for its writer, ahead of anything
//!   queued ([`DirectWrite::try_write`] returns it already framed for the socket).
//!
//! Fan-out events always go through the queues, where bursts coalesce into one write per stream.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::Conn;
use crate::event::Frame;

/// A socket the hub may write to from the publishing thread.
pub trait DirectWrite: Send + Sync {
    /// Writes one frame without blocking. `Ok(None)`: all of it went out. `Ok(Some(rest))`: part
    /// went out and `rest` must be written next, exactly as it is (it includes whatever framing
    /// the socket uses). `Err`: nothing went out (`WouldBlock` for a full socket buffer); the
    /// frame is queued for the stream's writer instead.
    fn try_write(&self, frame: &Bytes) -> io::Result<Option<Bytes>>;
}

/// A stream's socket, claimed for one frame during dispatch. Dropping the claim writes the frame
/// and releases the socket.
pub(crate) struct Claim {
    conn: Arc<Conn>,
    frame: Arc<Frame>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.conn.queue.write_claimed(&self.frame);
    }
}

/// Claims taken while dispatching, written in the order taken once the dispatcher's locks are
/// released.
#[derive(Default)]
pub(crate) struct DirectWrites(Vec<Claim>);

impl DirectWrites {
    /// Offers `frame` to `conn`: claims its socket if it is free, else queues the frame.
    pub fn offer(&mut self, conn: &Arc<Conn>, frame: &Arc<Frame>, now: u64) {
        if conn.queue.claim_or_push(frame, now) == super::queue::Push::Claimed {
            self.0.push(Claim {
                conn: conn.clone(),
                frame: frame.clone(),
            });
        }
    }

    /// Writes every claimed frame, in the order claimed.
    pub fn write(&mut self) {
        // Draining drops each claim in order, which writes it.
        self.0.drain(..).for_each(drop);
    }
}

impl Drop for DirectWrites {
    fn drop(&mut self) {
        self.write();
    }
}

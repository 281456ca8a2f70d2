//! Direct writes: an event for a user whose stream is idle is written to the attached socket by
//! the publisher; anything else goes through the stream's queue. Whatever the mix, the bytes on
//! the socket are every frame, whole, once, in id order.
//!
//! The socket here is a byte sink that takes a set number of bytes and then reports a full
//! buffer, so partial writes happen exactly where a test wants them (the HTTP tests in the
//! `herald` crate exercise the same path over real sockets).

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use futures_util::{FutureExt, StreamExt};
use herald_core::{
    Batch, DirectWrite, EventStream, Herald, HubConfig, Pattern, Publication, SubscribeRequest,
};
use parking_lot::Mutex;

/// Takes up to `budget` more bytes, then answers `WouldBlock`.
#[derive(Default)]
struct Socket {
    written: Mutex<Vec<u8>>,
    budget: Mutex<usize>,
}

impl Socket {
    fn with_budget(budget: usize) -> Arc<Self> {
        let socket = Arc::new(Socket::default());
        *socket.budget.lock() = budget;
        socket
    }

    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.written.lock())).unwrap()
    }
}

impl DirectWrite for Socket {
    fn try_write(&self, bytes: &Bytes) -> io::Result<Option<Bytes>> {
        let mut budget = self.budget.lock();
        let n = bytes.len().min(*budget);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        *budget -= n;
        self.written.lock().extend_from_slice(&bytes[..n]);
        // This socket has no framing: the rest is simply the rest of the frame.
        Ok((n < bytes.len()).then(|| bytes.slice(n..)))
    }
}

/// A stream of user `u` (also on topic `news`), its opening bytes consumed, socket attached.
async fn idle_stream(herald: &Herald, socket: &Arc<Socket>) -> EventStream {
    let mut stream = herald
        .subscribe(SubscribeRequest {
            user: Some("u".into()),
            topics: vec![Pattern::parse("news").unwrap()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(stream.next().now_or_never().is_some(), "opening bytes");
    stream.attach_direct(socket.clone());
    // Polling again tells the stream its last chunk is written: the socket is free.
    assert_eq!(queued(&mut stream), None);
    stream
}

/// What the stream's writer would write now, if anything.
fn queued(stream: &mut EventStream) -> Option<String> {
    let chunk = stream.next().now_or_never()?.expect("stream open");
    Some(String::from_utf8(chunk.to_vec()).unwrap())
}

/// Publishes a (valid) batch; its ids.
async fn publish(herald: &Herald, publications: Vec<Publication>) -> Vec<herald_core::EventId> {
    let batch = Batch::new(publications).expect("valid");
    herald.publish(&batch).await.expect("published")
}

fn to_user(data: &str) -> Publication {
    Publication::to_user("u", "e", data)
}

fn to_topic(data: &str) -> Publication {
    Publication::to_topic("news", "e", data)
}

fn frame(id: impl std::fmt::Display, data: &str) -> String {
    format!("event: e\nid: {id}\ndata: {data}\n\n")
}

#[tokio::test]
async fn an_event_for_an_idle_users_stream_is_written_by_the_publisher() {
    let herald = Herald::in_memory(HubConfig::default());
    let socket = Socket::with_budget(usize::MAX);
    let mut stream = idle_stream(&herald, &socket).await;

    let ids = publish(&herald, vec![to_user("hello")]).await;
    assert_eq!(socket.take(), frame(ids[0], "hello"));
    assert_eq!(queued(&mut stream), None, "nothing left for the writer");
}

#[tokio::test]
async fn what_the_socket_does_not_take_is_written_next_in_order() {
    let herald = Herald::in_memory(HubConfig::default());
    let socket = Socket::with_budget(10);
    let mut stream = idle_stream(&herald, &socket).await;

    // The first event is claimed for a direct write; the second queues behind the claim.
    let ids = publish(&herald, vec![to_user("first"), to_user("second")]).await;
    let direct = socket.take();
    assert_eq!(direct.len(), 10);
    let rest = queued(&mut stream).expect("the writer finishes the rest");
    assert_eq!(
        direct + &rest,
        frame(ids[0], "first") + &frame(ids[1], "second")
    );
}

#[tokio::test]
async fn a_full_socket_leaves_the_event_to_the_writer() {
    let herald = Herald::in_memory(HubConfig::default());
    let socket = Socket::with_budget(0);
    let mut stream = idle_stream(&herald, &socket).await;

    let ids = publish(&herald, vec![to_user("later")]).await;
    assert_eq!(socket.take(), "");
    assert_eq!(queued(&mut stream), Some(frame(ids[0], "later")));
}

#[tokio::test]
async fn a_chunk_being_written_is_never_overtaken() {
    let herald = Herald::in_memory(HubConfig::default());
    let socket = Socket::with_budget(usize::MAX);
    let mut stream = idle_stream(&herald, &socket).await;

    // A topic event goes through the queue; the writer takes it and is busy writing it...
    let topic = publish(&herald, vec![to_topic("fan-out")]).await;
    assert_eq!(queued(&mut stream), Some(frame(topic[0], "fan-out")));
    // ...so a user event published meanwhile must wait for it, not jump ahead on the socket.
    let user = publish(&herald, vec![to_user("after")]).await;
    assert_eq!(socket.take(), "");
    assert_eq!(queued(&mut stream), Some(frame(user[0], "after")));
    // Once the writer is idle again (it polled and found nothing), direct writes resume.
    assert_eq!(queued(&mut stream), None);
    let again = publish(&herald, vec![to_user("direct")]).await;
    assert_eq!(socket.take(), frame(again[0], "direct"));
}

#[tokio::test]
async fn a_dropped_stream_gets_no_writes() {
    let herald = Herald::in_memory(HubConfig::default());
    let socket = Socket::with_budget(usize::MAX);
    let stream = idle_stream(&herald, &socket).await;
    drop(stream);

    publish(&herald, vec![to_user("gone")]).await;
    assert_eq!(socket.take(), "");
    assert_eq!(
        Arc::strong_count(&socket),
        1,
        "the hub let go of the socket"
    );
}

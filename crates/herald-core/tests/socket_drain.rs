//! The socket writer's write timeout counts from the last progress, and draining output the
//! socket already accepted is progress too.
//!
//! A TLS socket takes a chunk whole (it encrypts it into records) and then sends those records
//! as the client reads. A client that reads slowly but steadily must keep its stream however long
//! the drain takes; a client that stops reading must lose it after the write timeout. The socket
//! here is such a socket with the client's reading in the test's hands: it keeps everything
//! written as pending output, and the test drains it piece by piece on a paused clock, so the
//! timeline is exact (the `herald` crate's TLS tests run the same writer over real sockets).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use herald_core::{
    serve_socket, Batch, EventStream, Herald, HubConfig, Publication, SocketSettings, SocketWriter,
    StreamSocket, SubscribeRequest,
};
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use tokio::time::{advance, Instant};

const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the client has not read yet, and the writer waiting for it to shrink.
#[derive(Default)]
struct Output {
    written: Vec<u8>,
    pending: usize,
    drain_waker: Option<Waker>,
}

/// A socket that accepts every write into pending output, sent only when the test drains it.
#[derive(Clone, Default)]
struct SlowReader(Arc<Mutex<Output>>);

impl SlowReader {
    /// The client reads `n` more bytes (all that are pending at most) and the writer is woken.
    fn drain(&self, n: usize) {
        let mut output = self.0.lock();
        output.pending = output.pending.saturating_sub(n);
        if let Some(waker) = output.drain_waker.take() {
            waker.wake();
        }
    }

    fn pending(&self) -> usize {
        self.0.lock().pending
    }

    fn written(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().written).into_owned()
    }
}

impl StreamSocket for SlowReader {
    fn poll_write_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut output = self.0.lock();
        let mut taken = 0;
        for buf in bufs {
            output.written.extend_from_slice(buf);
            taken += buf.len();
        }
        output.pending += taken;
        Ok(taken)
    }

    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The client never sends anything (nor closes): the writer is woken by drains alone.
        Poll::Pending
    }

    fn try_read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn pending_output(&self) -> usize {
        self.0.lock().pending
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut output = self.0.lock();
        if output.pending == 0 {
            return Poll::Ready(Ok(()));
        }
        output.drain_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for SlowReader {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.try_write_vectored(&[IoSlice::new(buf)]))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A stream of user `u` served on a fresh slow socket; the writer has written the response head
/// (32 KiB of it, as if a large first write were in flight) and waits for it to drain.
async fn blocked_writer(herald: &Herald) -> (SocketWriter<SlowReader>, SlowReader) {
    let stream: EventStream = herald
        .subscribe(SubscribeRequest {
            user: Some("u".into()),
            ..Default::default()
        })
        .await
        .expect("subscribed");
    let socket = SlowReader::default();
    let head = Bytes::from(vec![b'h'; 32 * 1024]);
    let settings = SocketSettings {
        write_timeout: WRITE_TIMEOUT,
    };
    let mut writer = serve_socket(stream, socket.clone(), head, settings);
    assert!(still_writing(&mut writer), "the head is taken but not sent");
    assert!(socket.pending() >= 32 * 1024);
    (writer, socket)
}

/// Polls the writer once: is the stream still being served?
fn still_writing(writer: &mut SocketWriter<SlowReader>) -> bool {
    writer.now_or_never().is_none()
}

#[tokio::test(start_paused = true)]
async fn a_client_that_reads_slowly_but_steadily_keeps_its_stream() {
    let herald = Herald::in_memory(HubConfig::default());
    let (mut writer, socket) = blocked_writer(&herald).await;
    let started = Instant::now();

    // The client reads 4 KiB every 0.6 s: the drain takes over 4 s, four write timeouts, but
    // no 1 s passes without progress.
    while socket.pending() > 4096 {
        advance(WRITE_TIMEOUT * 3 / 5).await;
        socket.drain(4096);
        assert!(
            still_writing(&mut writer),
            "stream ended {:?} into a drain that kept progressing",
            started.elapsed()
        );
    }
    assert!(started.elapsed() > WRITE_TIMEOUT * 4);
    socket.drain(usize::MAX);
    assert!(
        still_writing(&mut writer),
        "drained: the writer waits for events"
    );

    // The stream is still served: an event published now reaches the socket once the client
    // has read what came before it (the stream's opening bytes).
    let batch = Batch::one(Publication::to_user("u", "note", "after the drain")).expect("valid");
    herald.publish(&batch).await.expect("published");
    socket.drain(usize::MAX);
    assert!(still_writing(&mut writer));
    let written = socket.written();
    assert!(
        written.ends_with("data: after the drain\n\n\r\n"),
        "{:?}",
        &written[written.len().saturating_sub(200)..]
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_loses_its_stream_after_the_write_timeout() {
    let herald = Herald::in_memory(HubConfig::default());
    let (mut writer, socket) = blocked_writer(&herald).await;
    let started = Instant::now();

    // One read, then nothing: the timeout counts from that read.
    advance(WRITE_TIMEOUT / 2).await;
    socket.drain(4096);
    assert!(still_writing(&mut writer));
    let last_progress = Instant::now();
    (&mut writer).await;
    assert!(
        last_progress.elapsed() >= WRITE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert!(socket.pending() > 0);
}

//! Helpers shared by the hub's integration tests.

use std::future::poll_fn;
use std::pin::Pin;

use herald_core::EventStream;
use http_body::Body;

/// The bytes of the next frame the stream produces (everything it has ready now).
pub async fn next_chunk(stream: &mut EventStream) -> String {
    let frame = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        poll_fn(|cx| Pin::new(&mut *stream).poll_frame(cx)),
    )
    .await
    .expect("a frame in time")
    .expect("stream open")
    .expect("no error");
    let data = frame.into_data().expect("data frame");
    String::from_utf8_lossy(&data).into_owned()
}

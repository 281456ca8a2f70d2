//! Clients that hold connections without using them: they cost a bounded time and never stop
//! the hub from serving everyone else or from shutting down.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::future::join_all;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; the bytes read. Bounded by `WAIT`.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open after {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_and_silent_sockets_are_closed_within_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "2s"]);
    let addr = server.addr.clone();
    let started = Instant::now();
    // 300 that trickle a request head a byte every half second, 300 that send nothing.
    let slow = (0..300).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut tcp = TcpStream::connect(&addr).await.expect("connect");
            let head = b"GET /healthz HTTP/1.1\r\nHost: h\r\nX-Filler: aaaaaaaaaaaaaaaaaaaaaaa";
            let mut answer = Vec::new();
            let mut buf = [0u8; 512];
            for byte in head {
                if tcp.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    n = tcp.read(&mut buf) => match n {
                        Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
                        _ => return (Instant::now(), answer),
                    }
                }
                break;
            }
            answer.extend(until_closed(&mut tcp).await);
            (Instant::now(), answer)
        })
    });
    let silent = (0..300).map(|_| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut tcp = TcpStream::connect(&addr).await.expect("connect");
            let answer = until_closed(&mut tcp).await;
            (Instant::now(), answer)
        })
    });
    let slow: Vec<_> = slow.collect();
    let silent: Vec<_> = silent.collect();

    // Meanwhile the hub answers everyone else at once.
    let health = get(&addr, "/healthz").await;
    assert_eq!(health.status, 200);

    for (kind, tasks) in [("slowloris", slow), ("silent", silent)] {
        for result in join_all(tasks).await {
            let (closed_at, answer) = result.unwrap();
            let after = closed_at.duration_since(started);
            assert!(
                after < Duration::from_secs(5),
                "a {kind} socket stayed open {after:?}"
            );
            let text = String::from_utf8_lossy(&answer);
            if kind == "slowloris" {
                assert!(text.starts_with("HTTP/1.1 408"), "{text}");
            } else {
                assert!(text.is_empty(), "a silent socket is just closed: {text}");
            }
        }
    }
    assert_eq!(get(&addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn a_socket_that_never_sent_a_request_does_not_delay_shutdown() {
    let mut server = Server::start(&[]);
    let _silent = TcpStream::connect(&server.addr).await.expect("connect");
    let mut stream = Sse::ok(&server.addr, &token("alice", &[])).await;
    stream.next_item().await;
    let asked = Instant::now();
    let status = server.terminate().expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "1s"]);
    let mut tcp = TcpStream::connect(&server.addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Kept alive, then nothing: closed once idle for a second.
    let idle = Instant::now();
    let rest = until_closed(&mut tcp).await;
    assert!(rest.is_empty());
    assert!(
        idle.elapsed() >= Duration::from_millis(900) && idle.elapsed() < Duration::from_secs(4),
        "{:?}",
        idle.elapsed()
    );
    // A stream is never idle, whatever the timeout: still open well past it.
    let mut stream = Sse::ok(&server.addr, &token("alice", &[])).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let id = publish_id(&server.addr, json!({"user": "alice", "data": "later"})).await;
    assert_eq!(stream.next_event().await.last_event_id, id);
}

#[tokio::test]
async fn open_connections_per_ip_are_capped() {
    let server = Server::start(&["--max-connections-per-ip", "3"]);
    let t = token("alice", &[]);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Sse::ok(&server.addr, &t).await);
    }
    let refused = Sse::open(
        &server.addr,
        Open {
            token: Some(&t),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(refused.status, 429);
    assert!(refused.headers.contains_key("retry-after"));
    // One closes: there is room again.
    drop(open.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let again = Sse::open(
            &server.addr,
            Open {
                token: Some(&t),
                ..Default::default()
            },
        )
        .await;
        if again.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn running_out_of_file_descriptors_is_logged_at_a_bounded_rate() {
    // A hub with few descriptors, flooded with connections it cannot accept.
    let server = Server::start_shell(
        "ulimit -n 64 && exec {herald} serve --listen 127.0.0.1:0 --jwt-secret s --publish-key k",
    );
    // Connections it cannot accept, held for four seconds (connects wait in the kernel's
    // backlog, so they are made concurrently).
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let addr = server.addr.clone();
            tokio::spawn(async move {
                let tcp = TcpStream::connect(&addr).await;
                tokio::time::sleep(Duration::from_secs(4)).await;
                drop(tcp);
            })
        })
        .collect();
    // Three seconds of failing accepts, one warning a second at most...
    tokio::time::sleep(Duration::from_secs(3)).await;
    let output = server.output();
    let warnings = output.matches("accept failed").count();
    assert!(
        (1..=4).contains(&warnings),
        "{warnings} accept warnings in 3 s:\n{output}"
    );
    for task in flood {
        task.await.unwrap();
    }
    // ...and once the flood is gone, the hub answers again.
    let deadline = Instant::now() + WAIT;
    while get_status(&server.addr, "/healthz").await != Some(200) {
        assert!(Instant::now() < deadline, "the hub never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! The command-line clients against a real hub: `herald subscribe` and `herald publish`, their
//! output formats, and their errors (message on stderr, exit status 2).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::{json, Value};

fn herald(args: &[&str]) -> Command {
    let mut command = herald_command();
    command.args(args);
    command
}

fn run(args: &[&str]) -> Output {
    herald(args).output().expect("run herald")
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = herald(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `herald subscribe` running in the background; its stdout lines arrive on a channel.
struct Tail {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Tail {
    fn start(args: &[&str]) -> Self {
        let mut child = herald(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("a line from herald subscribe")
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn subscribe_prints_json_lines_for_events_sent_with_publish_and_batch() {
    let server = Server::start(&[]);
    let url = server.url("");
    let alice = token("alice", &["orders/*"]);
    let tail = Tail::start(&[
        "subscribe",
        "--url",
        &url,
        "--token",
        &alice,
        "--topic",
        "orders/1",
        "--json",
    ]);
    // Wait until the stream is live: broadcast pings until one shows up.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "subscribe never went live"
        );
        publish(&server.addr, json!({"event": "ping", "data": 0})).await;
        if let Ok(line) = tail
            .lines
            .recv_timeout(std::time::Duration::from_millis(200))
        {
            assert!(line.contains("\"ping\""), "{line}");
            break;
        }
    }
    while tail
        .lines
        .recv_timeout(std::time::Duration::from_millis(100))
        .is_ok()
    {}

    let published = run(&[
        "publish",
        "--url",
        &url,
        "--key",
        KEY,
        "--user",
        "alice",
        "--event",
        "payment_completed",
        "--data",
        r#"{"amount":5000}"#,
    ]);
    assert!(published.status.success(), "{}", stderr(&published));
    let id = String::from_utf8_lossy(&published.stdout).trim().to_owned();
    let line: Value = serde_json::from_str(&tail.line()).expect("one JSON object per line");
    assert_eq!(
        line,
        json!({"id": id, "event": "payment_completed", "data": {"amount": 5000}})
    );

    let batch = run_with_stdin(
        &["publish", "--url", &url, "--key", KEY, "--batch"],
        "{\"topic\":\"orders/1\",\"event\":\"order_update\",\"data\":\"two\\nlines\"}\n\n{\"user\":\"bob\",\"data\":1}\n{\"user\":\"alice\",\"data\":[1,2]}\n",
    );
    assert!(batch.status.success(), "{}", stderr(&batch));
    let ids: Vec<String> = String::from_utf8_lossy(&batch.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 3, "one id per event");
    let first: Value = serde_json::from_str(&tail.line()).expect("json");
    assert_eq!(
        first,
        json!({"id": ids[0], "event": "order_update", "data": "two\nlines"})
    );
    let second: Value = serde_json::from_str(&tail.line()).expect("json");
    assert_eq!(
        second,
        json!({"id": ids[2], "event": "message", "data": [1, 2]})
    );
}

#[tokio::test]
async fn subscribe_resumes_from_last_event_id() {
    let server = Server::start(&[]);
    let url = server.url("");
    let first = publish_id(
        &server.addr,
        json!({"user": "alice", "event": "one", "data": 1}),
    )
    .await;
    let second = publish_id(
        &server.addr,
        json!({"user": "alice", "event": "two", "data": 2}),
    )
    .await;
    let alice = token("alice", &[]);
    let tail = Tail::start(&[
        "subscribe",
        "--url",
        &url,
        "--token",
        &alice,
        "--last-event-id",
        &first,
    ]);
    assert_eq!(tail.line(), format!("two [{second}] 2"));
}

#[tokio::test]
async fn errors_are_explained_with_exit_status_2() {
    let server = Server::start(&[]);
    let url = server.url("");
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["subscribe", "--url", &url, "--token", "bad"], "401"),
        (
            vec!["subscribe", "--url", &closed_port, "--token", "t"],
            "cannot reach the hub",
        ),
        (
            vec!["publish", "--url", &url, "--key", "wrong", "--data", "1"],
            "401",
        ),
        (
            vec!["publish", "--url", &url, "--key", KEY, "--data", "{oops"],
            "--data must be JSON",
        ),
        (
            vec![
                "publish",
                "--url",
                &closed_port,
                "--key",
                KEY,
                "--data",
                "1",
            ],
            "cannot reach the hub",
        ),
        (
            vec![
                "publish", "--url", &url, "--key", KEY, "--event", "herald.x", "--data", "1",
            ],
            "reserved",
        ),
    ];
    for (args, expected) in cases {
        let output = run(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }

    let bad_batch = run_with_stdin(
        &["publish", "--url", &url, "--key", KEY, "--batch"],
        "{\"data\":1}\n{\"data\":2,\"usr\":\"typo\"}\n",
    );
    assert_eq!(bad_batch.status.code(), Some(2));
    assert!(
        stderr(&bad_batch).contains("stdin line 2"),
        "{}",
        stderr(&bad_batch)
    );
    assert!(
        bad_batch.stdout.is_empty(),
        "nothing published when a line is bad"
    );
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for sub in ["serve", "token", "publish", "subscribe", "typegen", "bench"] {
        let output = run(&[sub, "--help"]);
        assert!(output.status.success(), "{sub}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.contains("Example"),
            "`herald {sub} --help` shows an example:\n{text}"
        );
    }
}

#[tokio::test]
async fn publish_retains_and_is_idempotent_with_a_key() {
    let server = Server::start(&[]);
    let url = server.url("");
    let publish = |extra: &[&str]| {
        let mut args = vec!["publish", "--url", &url, "--key", KEY, "--user", "alice"];
        args.extend_from_slice(extra);
        let output = run(&args);
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let retained = publish(&["--event", "unread", "--data", "3", "--retain"]);
    // A stream opened afterwards starts with the retained value.
    let mut sse = Sse::ok(&server.addr, &token("alice", &[])).await;
    let first = sse.next_event().await;
    assert_eq!(
        (first.event_type.as_str(), first.data.as_str()),
        ("unread", "3")
    );
    assert_eq!(first.last_event_id, retained);
    // The same key twice: the same id, one delivery.
    let once = [
        "--event",
        "paid",
        "--data",
        "1",
        "--idempotency-key",
        "order-42",
    ];
    assert_eq!(publish(&once), publish(&once));
    publish(&["--event", "end", "--data", "0"]);
    assert_eq!(sse.names_until("end").await, ["paid", "end"]);
    // --retain clear needs no data.
    publish(&["--event", "unread", "--retain", "clear"]);
}

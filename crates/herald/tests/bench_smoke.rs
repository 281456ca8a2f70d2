//! A short run of every `herald bench` scenario against a real hub: the harness works and the
//! hub loses and duplicates nothing. Never a timing assertion: figures live in BENCHMARKS.md.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// `herald bench --json` against `server`, with its credentials.
fn bench_command(server: &Server) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args([
            "bench",
            "--json",
            "--target",
            "herald",
            "--url",
            &server.addr,
        ])
        .args(["--jwt-secret", SECRET, "--publish-key", KEY]);
    command
}

fn bench(server: &Server, args: &[&str]) -> Value {
    let output = bench_command(server)
        .args(["--pid", &server.pid().to_string()])
        .args(args)
        .output()
        .expect("run herald bench");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

fn assert_everything_delivered(report: &Value) {
    let expected = report["expected"].as_u64().unwrap();
    assert!(expected > 0, "{report}");
    assert_eq!(report["delivered"], expected, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    assert_eq!(report["errors"], Value::Array(vec![]), "{report}");
}

/// Streams held open; their memory is sampled.
const IDLE: &[&str] = &["--scenario", "idle", "--streams", "200", "--duration", "1s"];

/// The scenarios that deliver events, each short.
const DELIVERING: [&[&str]; 4] = [
    &[
        "--scenario",
        "per-user",
        "--streams",
        "200",
        "--rate",
        "500",
        "--duration",
        "1s",
    ],
    &[
        "--scenario",
        "broadcast",
        "--streams",
        "200",
        "--duration",
        "1s",
    ],
    &[
        "--scenario",
        "large",
        "--streams",
        "20",
        "--size",
        "65536",
        "--duration",
        "1s",
    ],
    &["--scenario", "reconnect", "--streams", "200"],
];

/// Runs the idle and every delivering scenario against `server`, each with `extra` flags.
fn run_every_scenario(server: &Server, extra: &[&str]) {
    let idle = bench(server, &[extra, IDLE].concat());
    assert_eq!(idle["streams_open"], 200, "{idle}");
    assert!(idle["rss_loaded_bytes"].as_u64().unwrap() > 0, "{idle}");
    for args in DELIVERING {
        assert_everything_delivered(&bench(server, &[extra, args].concat()));
    }
}

#[test]
fn every_scenario_runs_and_nothing_is_lost() {
    let server = Server::start(&[]);
    run_every_scenario(&server, &[]);
    let batched = bench(
        &server,
        &["--scenario", "publish", "--batch", "50", "--duration", "1s"],
    );
    assert!(batched["published"].as_u64().unwrap() >= 50, "{batched}");
    assert_eq!(batched["publish_errors"], 0, "{batched}");
}

#[test]
fn the_scenarios_run_over_tls_and_nothing_is_lost() {
    let (cert, key, _) = common::tls::self_signed();
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    run_every_scenario(&server, &["--tls-ca", &cert]);
}

#[test]
fn the_scenarios_run_over_http2_and_nothing_is_lost() {
    // 50 streams share each connection: over TLS (ALPN h2), and cleartext (prior knowledge).
    // A hub that did not speak HTTP/2 there would fail the handshake, and the run with it.
    let (cert, key, _) = common::tls::self_signed();
    let tls = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    run_every_scenario(&tls, &["--tls-ca", &cert, "--http2-streams", "50"]);
    let cleartext = Server::start(&[]);
    run_every_scenario(&cleartext, &["--http2-streams", "50"]);
}

#[test]
fn a_listening_generator_counts_the_broadcasts_another_publishes() {
    // Two generators share one broadcast, as on several nodes: one only listens, the other
    // publishes 20 broadcasts; each counts its own 100 streams.
    let server = Server::start(&[]);
    let mut listener = bench_command(&server)
        .args(["--user-prefix", "listener", "--scenario", "broadcast"])
        .args(["--streams", "100", "--listen-only", "--events", "20"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run herald bench");
    let mut stderr = std::io::BufReader::new(listener.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.starts_with("streams open") {
        line.clear();
        let read = std::io::BufRead::read_line(&mut stderr, &mut line).expect("read stderr");
        assert!(read > 0, "the listener ended before its streams were open");
    }
    assert_eq!(line.trim(), "streams open: 100");
    let publisher = bench(
        &server,
        &[
            "--scenario",
            "broadcast",
            "--streams",
            "100",
            "--events",
            "20",
        ],
    );
    assert_everything_delivered(&publisher);
    assert_eq!(publisher["published"], 20, "{publisher}");
    let output = listener.wait_with_output().expect("the listener ends");
    assert!(output.status.success());
    let listened: Value = serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!(listened["expected"], 2000, "{listened}");
    assert_everything_delivered(&listened);
}

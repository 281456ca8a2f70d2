//! A short run of every `herald bench` scenario against a real hub: the harness works and the
//! hub loses and duplicates nothing. Never a timing assertion: figures live in BENCHMARKS.md.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn bench(server: &Server, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "bench",
            "--json",
            "--target",
            "herald",
            "--url",
            &server.addr,
        ])
        .args([
            "--jwt-secret",
            SECRET,
            "--publish-key",
            KEY,
            "--pid",
            &server.pid().to_string(),
        ])
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

#[test]
fn every_scenario_runs_and_nothing_is_lost() {
    let server = Server::start(&[]);
    let idle = bench(
        &server,
        &["--scenario", "idle", "--streams", "200", "--duration", "1s"],
    );
    assert_eq!(idle["streams_open"], 200, "{idle}");
    assert!(idle["rss_loaded_bytes"].as_u64().unwrap() > 0, "{idle}");

    for args in [
        &[
            "--scenario",
            "per-user",
            "--streams",
            "200",
            "--rate",
            "500",
            "--duration",
            "1s",
        ][..],
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
    ] {
        assert_everything_delivered(&bench(&server, args));
    }
    let batched = bench(
        &server,
        &["--scenario", "publish", "--batch", "50", "--duration", "1s"],
    );
    assert!(batched["published"].as_u64().unwrap() >= 50, "{batched}");
    assert_eq!(batched["publish_errors"], 0, "{batched}");
}

//! A request refused before its body is read (413, 401) still reaches the client as an answer,
//! never as a reset or a broken pipe, with the HTTP clients people use: Python's `http.client`
//! (what `requests` builds on) and Node's `fetch`, each 20 times in a row for each of several
//! body sizes (whether a reset happens depends on timing and size, so one size proves little).

mod common;

use std::process::Command;

use common::*;

/// Over the default --max-body-bytes (1 MiB) and more than socket buffers hold: 2, 2.5, 3 and
/// 8 MiB.
const SIZES: [usize; 4] = [2 << 20, 5 << 19, 3 << 20, 8 << 20];

const PYTHON: &str = r#"
import http.client, sys
host, port, key, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
body = b"x" * size
for _ in range(20):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", "/publish", body=body, headers=headers)
        print(conn.getresponse().status)
    except Exception as error:
        print(type(error).__name__)
    finally:
        conn.close()
"#;

const NODE: &str = r#"
const [url, key, size] = process.argv.slice(1);
const body = Buffer.alloc(Number(size), 120);
(async () => {
  for (let i = 0; i < 20; i++) {
    const headers = { 'content-type': 'application/json' };
    if (key) headers.authorization = `Bearer ${key}`;
    try {
      const response = await fetch(`${url}/publish`, { method: 'POST', body, headers });
      await response.text();
      console.log(response.status);
    } catch (error) {
      console.log(error.cause?.code ?? error.name);
    }
  }
})();
"#;

fn run(mut command: Command) -> Vec<String> {
    let output = command.output().expect("run the client");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn python(server: &Server, key: &str, size: usize) -> Vec<String> {
    let (host, port) = server.addr.rsplit_once(':').unwrap();
    let mut command = Command::new("python3");
    command
        .args(["-c", PYTHON, host, port, key])
        .arg(size.to_string());
    run(command)
}

fn node(server: &Server, key: &str, size: usize) -> Vec<String> {
    let mut command = Command::new("node");
    command
        .args(["-e", NODE, &server.url(""), key])
        .arg(size.to_string());
    run(command)
}

#[test]
fn python_http_client_sees_413_and_401_every_time() {
    let server = Server::start(&[]);
    for size in SIZES {
        assert_eq!(python(&server, KEY, size), vec!["413"; 20], "{size} bytes");
        let unauthenticated = python(&server, "", size);
        assert_eq!(
            unauthenticated,
            vec!["401"; 20],
            "{size} bytes, no credential"
        );
    }
}

#[test]
fn node_fetch_sees_413_and_401_every_time() {
    let server = Server::start(&[]);
    for size in SIZES {
        assert_eq!(node(&server, KEY, size), vec!["413"; 20], "{size} bytes");
        let unauthenticated = node(&server, "", size);
        assert_eq!(
            unauthenticated,
            vec!["401"; 20],
            "{size} bytes, no credential"
        );
    }
}

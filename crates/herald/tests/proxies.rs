//! docs/OPERATIONS.md's nginx and HAProxy settings, run for real in front of a hub: the
//! configurations are read from the document itself (only addresses, and time scales where a
//! test cannot wait an hour, are changed), so the document cannot drift from what works.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The body of the first fenced block of `language` in docs/OPERATIONS.md.
fn documented(language: &str) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/OPERATIONS.md"
    ))
    .expect("docs/OPERATIONS.md");
    let fence = format!("```{language}\n");
    let start = doc.find(&fence).expect("a fenced block") + fence.len();
    let end = start + doc[start..].find("```").expect("its end");
    doc[start..end].to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A proxy process, killed when dropped.
struct Proxy {
    child: Child,
    addr: String,
    _dir: std::path::PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(name: &str) -> String {
    let path = format!("/usr/sbin/{name}");
    assert!(
        std::path::Path::new(&path).exists(),
        "{name} is not installed (scripts/test-all.sh installs it: apt-get install {name})"
    );
    path
}

impl Proxy {
    /// Runs `command` (a proxy configured to listen on `port`), until it listens.
    async fn start(mut command: Command, port: u16, dir: std::path::PathBuf) -> Proxy {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy");
        let mut proxy = Proxy {
            child,
            addr: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(&proxy.addr).await.is_err() {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("the proxy exited: {status}");
            }
            assert!(Instant::now() < deadline, "the proxy never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy
    }
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-{name}-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("dir");
    // nginx's workers run as an unprivileged user and write their temporary files here.
    let _ = Command::new("chmod").arg("777").arg(&dir).status();
    dir
}

async fn nginx(hub: &Server) -> Proxy {
    let port = free_port();
    let dir = scratch_dir("nginx");
    let site = documented("nginx")
        .replace(
            "    server 10.0.0.11:8080;\n",
            &format!("    server {};\n", hub.addr),
        )
        .replace("    server 10.0.0.12:8080;\n", "")
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{port};"),
        );
    let d = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n{site}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
    let mut nginx = Command::new(binary("nginx"));
    nginx.args(["-c", &format!("{d}/nginx.conf"), "-p", &format!("{d}/")]);
    Proxy::start(nginx, port, dir).await
}

/// HAProxy with the documented settings, `client` and `server` timeouts scaled to `timeout`.
async fn haproxy(hub: &Server, timeout: &str) -> Proxy {
    let port = free_port();
    let dir = scratch_dir("haproxy");
    let documented = documented("haproxy");
    assert!(documented.contains("timeout client  1h") && documented.contains("timeout server  1h"));
    let conf = documented
        .replace("timeout client  1h", &format!("timeout client  {timeout}"))
        .replace("timeout server  1h", &format!("timeout server  {timeout}"))
        .replace(
            "    server a 10.0.0.11:8080 check\n",
            &format!("    server a {} check\n", hub.addr),
        )
        .replace("    server b 10.0.0.12:8080 check\n", "")
        + &format!("frontend front\n    bind 127.0.0.1:{port}\n    default_backend herald\n");
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf).expect("haproxy.cfg");
    let mut haproxy = Command::new(binary("haproxy"));
    haproxy.args(["-db", "-f"]).arg(&path);
    Proxy::start(haproxy, port, dir).await
}

#[tokio::test]
async fn behind_the_documented_nginx_events_arrive_at_once_and_413s_are_heralds() {
    let hub = Server::start(&[]);
    let proxy = nginx(&hub).await;
    let t = token("alice", &[]);
    let mut sse = Sse::ok(&proxy.addr, &t).await;
    let id = publish_id(
        &proxy.addr,
        json!({"user": "alice", "event": "hi", "data": 1}),
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(2), sse.next_event())
        .await
        .expect("not buffered by the proxy");
    assert_eq!(event.last_event_id, id);
    // Over Herald's --max-body-bytes (1 MiB), under nginx's limit: Herald's JSON answer.
    let big = json!({"data": "x".repeat(2 << 20)}).to_string();
    let reply = publish_raw(&proxy.addr, Some(KEY), big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"], "payload_too_large", "{}", reply.body);
}

/// Seconds until the proxy closes an open stream that gets no event (at most `within`).
async fn open_for(proxy: &Proxy, within: Duration) -> Option<Duration> {
    let mut tcp = TcpStream::connect(&proxy.addr).await.expect("connect");
    let t = token("alice", &[]);
    let request = format!("GET /events HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {t}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, request.as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn behind_the_documented_haproxy_heartbeats_keep_streams_open_past_its_timeouts() {
    // The client and server timeouts (scaled to 2 s) are what bound a quiet stream; heartbeats
    // every second keep it open, as the document says.
    let chatty = Server::start(&["--heartbeat", "1"]);
    let proxy = haproxy(&chatty, "2s").await;
    assert_eq!(open_for(&proxy, Duration::from_secs(5)).await, None);
    // Without heartbeats within them, it is closed after about 2 s, though `timeout tunnel`
    // says 1h: the tunnel timeout does not apply to streams.
    let quiet = Server::start(&["--heartbeat", "30"]);
    let proxy = haproxy(&quiet, "2s").await;
    let closed = open_for(&proxy, Duration::from_secs(10)).await;
    assert!(
        closed.is_some_and(
            |after| after >= Duration::from_millis(1500) && after < Duration::from_secs(5)
        ),
        "{closed:?}"
    );
}

//! The scenarios: open streams, publish, drain, and turn the counters into a report.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::marker::now_us;
use crate::publisher::{self, Pace, Plan, Published};
use crate::report::Report;
use crate::stats::{cpu_percent, Deliveries, LatencyShards, ProcessSample, SEQ_RING};
use crate::stream::{StreamTransport, Streams};
use crate::target::{Kind, Target};
use crate::transport::Transport;
use crate::{BenchArgs, Scenario};

/// How long delivery may stall after publishing ends before the rest counts as lost.
const DRAIN_IDLE: Duration = Duration::from_secs(3);
/// How long a `--listen-only` generator waits for the first broadcast.
const LISTEN_PATIENCE: Duration = Duration::from_secs(300);

pub async fn run(args: &BenchArgs) -> Result<Report, String> {
    let server = resolve(&args.url)?;
    let publish_to = match &args.publish_url {
        Some(url) => resolve(url)?,
        None => server,
    };
    if args.target == Kind::Herald && (args.jwt_secret.is_empty() || args.publish_key.is_empty()) {
        return Err("benchmarking Herald needs --jwt-secret and --publish-key (or HERALD_JWT_SECRET / HERALD_PUBLISH_KEY)".into());
    }
    if (args.retain || args.idempotency_keys) && args.target != Kind::Herald {
        return Err("--retain and --idempotency-keys are Herald features".into());
    }
    if args.listen_only && !matches!(args.scenario, Scenario::Broadcast | Scenario::Large) {
        return Err("--listen-only counts broadcasts: use --scenario broadcast or large".into());
    }
    if args.batch > 1 && !args.target.batches() {
        return Err(format!(
            "{} cannot publish batches; use --batch 1",
            args.target.name()
        ));
    }
    let target = Target {
        kind: args.target,
        host: args.url.clone(),
        jwt_secret: args.jwt_secret.clone(),
        publish_key: args.publish_key.clone(),
        retain: args.retain,
        idempotency_keys: args.idempotency_keys,
        transport: match &args.tls_ca {
            Some(ca) => Transport::tls(ca, &args.tls_server_name, b"http/1.1")?,
            None => Transport::plain(),
        },
        user_prefix: args.user_prefix.clone(),
    };
    let over = StreamTransport {
        transport: match (&args.tls_ca, args.http2_streams) {
            (Some(ca), 1..) => Transport::tls(ca, &args.tls_server_name, b"h2")?,
            _ => target.transport.clone(),
        },
        http2_streams: args.http2_streams,
        host: args.url.clone(),
    };
    let mut report = Report {
        target: args.target.name().into(),
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        ..Report::default()
    };
    if args.scenario == Scenario::Reconnect {
        return reconnect_storm(server, &target, &over, args, report).await;
    }

    let deliveries = Arc::new(Deliveries::default());
    let latency = Arc::new(LatencyShards::default());
    let broadcast = matches!(args.scenario, Scenario::Broadcast | Scenario::Large);
    let stream_count = if args.scenario == Scenario::Publish {
        0
    } else {
        args.streams
    };
    let idle = ProcessSample::read_all(&args.pid);
    let streams = Streams::open(
        &over,
        server,
        stream_count,
        |i| target.subscribe_request(&target.channel(i, broadcast), None),
        deliveries.clone(),
        latency.clone(),
    )
    .await;
    record_streams(&mut report, &streams, stream_count);
    let open = streams.open_count();

    let plan = Plan {
        pace: match args.scenario {
            Scenario::Broadcast | Scenario::Large => Pace::ClosedLoop {
                window: args.window.max(1),
                streams: open as u32,
            },
            Scenario::Publish => Pace::FlatOut,
            _ => Pace::Rate(args.rate),
        },
        duration: args.duration,
        max_events: match args.scenario {
            Scenario::Idle => 0,
            // The closed loop counts deliveries in a ring of sequence numbers.
            Scenario::Broadcast | Scenario::Large => SEQ_RING as u64 - args.window.max(1),
            _ => u64::MAX,
        }
        .min(args.events.unwrap_or(u64::MAX)),
        connections: if broadcast { 1 } else { args.publishers },
        batch: args.batch,
        payload_size: args.size.unwrap_or(if args.scenario == Scenario::Large {
            64 * 1024
        } else {
            0
        }),
        users: if broadcast {
            None
        } else {
            Some(stream_count.max(1))
        },
    };

    if args.scenario == Scenario::Idle {
        // Let allocations settle (buffers released after the first writes) before measuring.
        tokio::time::sleep(args.duration.min(Duration::from_secs(3))).await;
        let loaded = ProcessSample::read_all(&args.pid);
        record_memory(&mut report, idle, loaded, open);
        streams.close().await;
        return Ok(report);
    }

    let before = ProcessSample::read_all(&args.pid);
    let mut started_us = now_us();
    let mut started = Instant::now();
    let (published, expected) = if args.listen_only {
        eprintln!("streams open: {open}");
        // The run starts with the first broadcast another generator publishes.
        let deadline = Instant::now() + LISTEN_PATIENCE;
        while deliveries.delivered() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (started_us, started) = (now_us(), Instant::now());
        let expected = args.events.unwrap_or(0) * open;
        (Published::default(), expected)
    } else {
        let published = publisher::run(publish_to, &target, &plan, deliveries.clone()).await;
        let expected = if broadcast {
            published.broadcast * open
        } else {
            published.per_user.iter().take(stream_count).sum()
        };
        (published, expected)
    };
    drain(&deliveries, expected).await;
    let after = ProcessSample::read_all(&args.pid);
    let window = started.elapsed().as_secs_f64();

    record_published(&mut report, &published);
    let delivered = deliveries.delivered();
    report.expected = expected;
    report.delivered = delivered;
    report.lost = expected.saturating_sub(delivered);
    report.duplicates = deliveries.duplicates();
    let delivery_span = deliveries.last_delivery_us().saturating_sub(started_us) as f64 / 1e6;
    report.deliveries_per_s = if delivery_span > 0.0 {
        delivered as f64 / delivery_span
    } else {
        0.0
    };
    record_latency(&mut report, &latency);
    if let (Some(before), Some(after)) = (before, after) {
        report.server_cpu_percent = cpu_percent(before, after, window);
        report.rss_idle_bytes = idle.map_or(0, |s| s.rss_bytes);
        report.rss_loaded_bytes = after.rss_bytes;
    }
    report.streams_closed_by_server = streams
        .counters
        .closed_by_server
        .load(std::sync::atomic::Ordering::Relaxed);
    streams.close().await;
    Ok(report)
}

/// Every stream drops at once and reconnects with the Last-Event-ID it had, while events were
/// published in between: how fast does everyone get back, and is anything lost?
async fn reconnect_storm(
    server: SocketAddr,
    target: &Target,
    over: &StreamTransport,
    args: &BenchArgs,
    mut report: Report,
) -> Result<Report, String> {
    if !args.target.resumes() || args.target == Kind::Nchan {
        return Err(format!(
            "{} cannot be resumed by this harness",
            args.target.name()
        ));
    }
    // Phase 1: everyone connected and positioned at one known event.
    let warmup = Arc::new(Deliveries::default());
    let latency = Arc::new(LatencyShards::default());
    let streams = Streams::open(
        over,
        server,
        args.streams,
        |i| target.subscribe_request(&target.channel(i, true), None),
        warmup.clone(),
        latency.clone(),
    )
    .await;
    let open = streams.open_count();
    let position = publish_one(server, target).await?;
    drain(&warmup, open).await;
    streams.close().await;

    // Phase 2: events published while nobody is connected.
    let missed: u64 = 10;
    let plan = Plan {
        pace: Pace::FlatOut,
        duration: Duration::from_secs(60),
        max_events: missed,
        connections: 1,
        batch: 1,
        payload_size: 0,
        users: None,
    };
    let deliveries = Arc::new(Deliveries::default());
    let published = publisher::run(server, target, &plan, deliveries.clone()).await;

    // Phase 3: the storm.
    let started = Instant::now();
    let started_us = now_us();
    let streams = Streams::open(
        over,
        server,
        args.streams,
        |i| target.subscribe_request(&target.channel(i, true), Some(&position)),
        deliveries.clone(),
        latency.clone(),
    )
    .await;
    record_streams(&mut report, &streams, args.streams);
    let expected = published.broadcast * streams.open_count();
    drain(&deliveries, expected).await;
    report.connects_per_s = args.streams as f64 / started.elapsed().as_secs_f64();
    record_published(&mut report, &published);
    report.expected = expected;
    report.delivered = deliveries.delivered();
    report.lost = expected.saturating_sub(report.delivered);
    report.duplicates = deliveries.duplicates();
    let span = deliveries.last_delivery_us().saturating_sub(started_us) as f64 / 1e6;
    report.deliveries_per_s = if span > 0.0 {
        report.delivered as f64 / span
    } else {
        0.0
    };
    record_latency(&mut report, &latency);
    streams.close().await;
    Ok(report)
}

/// Publishes one broadcast and returns the id Herald assigned to it.
async fn publish_one(server: SocketAddr, target: &Target) -> Result<String, String> {
    use http_body_util::{BodyExt, Full};
    let conn = target.transport.connect(server).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(conn))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let publish = target.publish_request(
        crate::target::Dest::All,
        &[crate::marker::encode(u64::MAX / 2, 0)],
        u64::MAX / 2,
    );
    let mut request = http::Request::post(&publish.path).header("host", &target.host);
    for (name, value) in &publish.headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(publish.body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let answer: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("publish answer: {e}"))?;
    answer["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no id in {answer}"))
}

/// Waits until `expected` deliveries arrived, or delivery stalled for [`DRAIN_IDLE`].
async fn drain(deliveries: &Deliveries, expected: u64) {
    let mut last = deliveries.delivered();
    let mut last_progress = Instant::now();
    while deliveries.delivered() < expected && last_progress.elapsed() < DRAIN_IDLE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = deliveries.delivered();
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
    }
}

fn resolve(url: &str) -> Result<SocketAddr, String> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    host.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {host:?}"))
}

fn record_streams(report: &mut Report, streams: &Streams, wanted: usize) {
    report.streams = wanted;
    report.streams_open = streams.open_count();
    report.connect_errors = streams
        .counters
        .connect_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    report.connects_per_s = if wanted > 0 {
        wanted as f64 / streams.connect_time.as_secs_f64()
    } else {
        0.0
    };
    if let Some(error) = &streams.first_error {
        report.errors.push(format!("first connect error: {error}"));
    }
}

fn record_memory(
    report: &mut Report,
    idle: Option<ProcessSample>,
    loaded: Option<ProcessSample>,
    open: u64,
) {
    if let (Some(idle), Some(loaded)) = (idle, loaded) {
        report.rss_idle_bytes = idle.rss_bytes;
        report.rss_loaded_bytes = loaded.rss_bytes;
        report.rss_per_stream_bytes = loaded.rss_bytes.saturating_sub(idle.rss_bytes) / open.max(1);
    }
}

fn record_published(report: &mut Report, published: &Published) {
    report.published = published.events;
    report.publish_requests = published.requests;
    report.publish_errors = published.errors;
    report.published_per_s = published.events as f64 / published.elapsed.as_secs_f64().max(1e-9);
    report.publish_request_p50_us = published.request_p50_us;
    report.publish_request_p99_us = published.request_p99_us;
    if let Some(error) = &published.first_error {
        report.errors.push(error.clone());
    }
}

fn record_latency(report: &mut Report, latency: &LatencyShards) {
    let histogram = latency.merged();
    report.latency_p50_us = histogram.value_at_quantile(0.5);
    report.latency_p90_us = histogram.value_at_quantile(0.9);
    report.latency_p99_us = histogram.value_at_quantile(0.99);
    report.latency_p999_us = histogram.value_at_quantile(0.999);
    report.latency_max_us = histogram.max();
}

//! The Kafka service through a real broker (tansu, in-memory), in one run:
//!
//! 1. passthrough: a consumer that produces every message unchanged to another topic (no
//!    parsing): the ceiling the broker and librdkafka allow on this machine;
//! 2. `credtrail run` on the same pre-produced events: sustained events/s;
//! 3. event-to-alert latency at half that rate, with lateness 0: events stamped with the wall
//!    clock, each alert's last evidence carries its send time in its event id; latency is from
//!    producing that event to reading the alert with an independent consumer. The first second
//!    is warm-up and left out. The same run splits it: the broker's floor (a plain consumer of
//!    the input topic, produce -> read), the service's own share (its
//!    `credtrail_event_to_alert_seconds` histogram: last event consumed -> alert acknowledged)
//!    and the alert's way out (its CreateTime -> read).
//!
//! tansu answers a fetch only when `fetch.wait.max.ms` has passed, even when data arrived
//! earlier (Apache Kafka answers as soon as `fetch.min.bytes` are there), so the service here
//! runs with `fetch.wait.max.ms = 5`; with its default of 100 ms, every event waits out a
//! fetch on tansu.
//!
//! `cargo bench --bench kafka` (set BENCH_EVENTS, BENCH_SECONDS to change the sizes, BENCH_RATE
//! for the latency run's rate).

#[path = "../tests/broker/mod.rs"]
mod broker;
#[path = "../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use credtrail::metrics::Metrics;
use credtrail::service::{self, Control};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CloudTrail lines of the demo dataset as JSON templates.
fn templates() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string("datasets/demo/events.jsonl").expect("demo dataset");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("eventSource").is_some())
        .collect()
}

fn stamp(t: &serde_json::Value, id: String, time: SystemTime) -> Vec<u8> {
    let mut v = t.clone();
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0) as i64;
    let et = credtrail::time::EventTime::from_millis(ms).to_string();
    v["eventTime"] = serde_json::Value::String(et);
    v["eventID"] = serde_json::Value::String(id);
    serde_json::to_vec(&v).expect("json")
}

fn producer(addr: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .create()
        .expect("producer")
}

fn send(p: &BaseProducer, topic: &str, payload: &[u8]) {
    loop {
        match p.send(BaseRecord::<(), [u8]>::to(topic).payload(payload)) {
            Ok(()) => return,
            Err(_) => p.poll(Duration::from_millis(5)),
        }
    }
}

fn config(
    addr: &str,
    input: &str,
    out: &str,
    group: &str,
    lateness: &str,
) -> credtrail::config::ServiceConfig {
    let text = format!(
        r#"
[kafka]
brokers = "{addr}"
group = "{group}"
alert_topic = "{out}-alerts"
dead_letter_topic = "{out}-dead"
checkpoint_topic = "{out}-checkpoints"
commit_interval = "1s"
[kafka.consumer]
"session.timeout.ms" = 6000
"fetch.wait.max.ms" = 5
[kafka.producer]
"linger.ms" = 0
[[input]]
topic = "{input}"
profile = "cloudtrail"
lateness = "{lateness}"
[rules]
paths = ["rules"]
watch = false
[engine]
shards = 1
workers = 1
[metrics]
listen = ""
"#
    );
    credtrail::config::load_str(
        &text,
        &std::env::current_dir().unwrap().join("b.toml"),
        Vec::new(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .0
}

fn passthrough(addr: &str, input: &str, n: usize) -> f64 {
    let out = broker::unique("pass-out");
    broker::create_topics(addr, &[(&out, 1)]);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", broker::unique("pass"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    c.subscribe(&[input]).expect("subscribe");
    let p = producer(addr);
    let mut seen = 0;
    let mut started = None;
    while seen < n {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            send(&p, &out, m.payload().unwrap_or(&[]));
            p.poll(Duration::ZERO);
            seen += 1;
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    seen as f64 / started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(1.0)
}

fn credtrail_rate(addr: &str, input: &str, n: usize) -> f64 {
    let out = broker::unique("ct");
    broker::create_topics(
        addr,
        &[
            (&format!("{out}-alerts"), 1),
            (&format!("{out}-dead"), 1),
            (&format!("{out}-checkpoints"), 1),
        ],
    );
    let c = config(addr, input, &out, &broker::unique("ctg"), "5m");
    let (control, metrics) = (Control::new(), Metrics::new());
    let rules = Arc::new(rules());
    let (cc, mm) = (control.clone(), metrics.clone());
    let h = std::thread::spawn(move || service::run(&c, rules, Default::default(), mm, &cc));
    while metrics.events_in.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    while (metrics.events_in.load(Ordering::Relaxed) as usize) < n {
        std::thread::sleep(Duration::from_millis(2));
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    control.stop();
    h.join().expect("thread").expect("service");
    rate
}

fn rules() -> credtrail::matcher::RuleSet {
    let cat = credtrail::sigma::load(&["rules".into()], &Default::default()).expect("rules");
    credtrail::matcher::compile(&cat, &Default::default()).expect("compile")
}

fn latency(addr: &str, rate: f64, seconds: usize, t: &[serde_json::Value]) -> (Vec<f64>, u64) {
    let input = broker::unique("lat-in");
    broker::create_topics(addr, &[(&input, 1)]);
    let out = broker::unique("lat");
    let alerts = format!("{out}-alerts");
    broker::create_topics(
        addr,
        &[
            (&alerts, 1),
            (&format!("{out}-dead"), 1),
            (&format!("{out}-checkpoints"), 1),
        ],
    );
    let c = config(addr, &input, &out, &broker::unique("latg"), "0s");
    let (control, metrics) = (Control::new(), Metrics::new());
    let rules = Arc::new(rules());
    let (cc, mm) = (control.clone(), metrics.clone());
    let h = std::thread::spawn(move || service::run(&c, rules, Default::default(), mm, &cc));
    // Wait until the service has its partition.
    while !metrics.is_ready() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let reader_addr = addr.to_string();
    let alerts_topic = alerts.clone();
    let total = (rate * seconds as f64) as usize;
    // Alerts of events sent in the first second are warm-up (connections, first fetches).
    let warm_until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
        + WARM_UP.as_nanos() as i128;
    // The broker's own floor: a plain consumer of the input topic, produce -> read per event.
    let (probe_addr, probe_topic) = (addr.to_string(), input.clone());
    let warm_ms = (warm_until / 1_000_000) as i64;
    let probe = std::thread::spawn(move || {
        let mut lat = Vec::new();
        read_for(&probe_addr, &probe_topic, "5", seconds + 10, |m| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let sent = m.timestamp().to_millis().unwrap_or(0);
            if sent >= warm_ms {
                lat.push((now - sent) as f64);
            }
        });
        lat
    });
    let reader = std::thread::spawn(move || {
        // (event sent -> alert read, alert produced -> alert read), in ms.
        let mut lat = Vec::new();
        read_for(&reader_addr, &alerts_topic, "1", seconds + 10, |m| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as i128;
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or(&[])).unwrap();
            let last = v["evidences"]
                .as_array()
                .and_then(|e| e.last())
                .cloned()
                .unwrap_or_default();
            let id = last["data"]["event_uid"].as_str().unwrap_or("");
            if let Some(sent) = id
                .strip_prefix("lat-")
                .and_then(|s| s.split('-').next())
                .and_then(|s| s.parse::<i128>().ok())
                && sent >= warm_until
            {
                // The alert's CreateTime: when the service handed it to its producer.
                let produced = m.timestamp().to_millis().unwrap_or(0) as i128 * 1_000_000;
                lat.push(((now - sent) as f64 / 1e6, (now - produced) as f64 / 1e6));
            }
        });
        lat
    });
    let p = producer(addr);
    let started = Instant::now();
    for i in 0..total {
        // Sleep, not spin, until the event is due: a spinning producer would take one of the
        // machine's two cores from the broker and the service it measures.
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        while Instant::now() < due {
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_micros(500));
        }
        let now = SystemTime::now();
        let nanos = now.duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let e = stamp(&t[i % t.len()], format!("lat-{nanos}-{i}"), now);
        send(&p, &input, &e);
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let (mut lat, mut tail): (Vec<f64>, Vec<f64>) =
        reader.join().expect("reader").into_iter().unzip();
    let mut floor = probe.join().expect("probe");
    floor.sort_by(|a, b| a.total_cmp(b));
    println!(
        "broker floor, input produce -> read by a plain consumer (ms clock): p50 {:.0} ms, p99 {:.0} ms, p99.9 {:.0} ms, max {:.0} ms",
        pct(&floor, 0.5),
        pct(&floor, 0.99),
        pct(&floor, 0.999),
        floor.last().copied().unwrap_or(f64::NAN)
    );
    tail.sort_by(|a, b| a.total_cmp(b));
    println!(
        "of which alert produced -> read (broker and reader, ms clock): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pct(&tail, 0.5),
        pct(&tail, 0.99),
        tail.last().copied().unwrap_or(f64::NAN)
    );
    control.stop();
    h.join().expect("thread").expect("service");
    lat.sort_by(|a, b| a.total_cmp(b));
    // The service's own share: from consuming an alert's last event to the producer's ack.
    let inside: Vec<String> = metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("credtrail_event_to_alert_seconds_bucket"))
        .map(|l| {
            l.trim_start_matches("credtrail_event_to_alert_seconds_bucket")
                .to_string()
        })
        .collect();
    println!(
        "inside the service (consumed -> acknowledged), cumulative: {}",
        inside.join(" ")
    );
    (lat, metrics.alerts_delivered.load(Ordering::Relaxed))
}

/// Reads partition 0 of `topic` from its beginning for `seconds`, handing every message to `f`.
fn read_for(
    addr: &str,
    topic: &str,
    wait_ms: &str,
    seconds: usize,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) {
    let r: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", broker::unique("latr"))
        .set("fetch.wait.max.ms", wait_ms)
        .create()
        .expect("reader");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .expect("partition");
    r.assign(&tpl).expect("assign");
    let until = Instant::now() + Duration::from_secs(seconds as u64);
    while Instant::now() < until {
        if let Some(Ok(m)) = r.poll(Duration::from_millis(20)) {
            f(&m);
        }
    }
}

/// The start of the latency run left out of its figures.
const WARM_UP: Duration = Duration::from_secs(1);

fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_usize("BENCH_EVENTS", 200_000);
    let seconds = env_usize("BENCH_SECONDS", 20);
    let b = broker::broker();
    let t = templates();
    let input = broker::unique("bench-in");
    broker::create_topics(&b.addr, &[(&input, 1)]);
    let p = producer(&b.addr);
    let base = SystemTime::now();
    for i in 0..n {
        let e = stamp(
            &t[i % t.len()],
            format!("ev-{i}"),
            base + Duration::from_millis(i as u64),
        );
        send(&p, &input, &e);
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    eprintln!("produced {n} events");
    let pass = passthrough(&b.addr, &input, n);
    let ct = credtrail_rate(&b.addr, &input, n);
    println!("passthrough (consume -> produce, no parsing): {pass:.0} events/s");
    println!(
        "credtrail run: {ct:.0} events/s ({:.0} % of passthrough)",
        100.0 * ct / pass
    );
    // BENCH_RATE overrides the latency run's rate (default: half the sustained rate).
    let rate = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(ct / 2.0);
    let (lat, alerts) = latency(&b.addr, rate, seconds, &t);
    println!(
        "event-to-alert latency at {:.0} events/s, lateness 0s, {} alerts ({} delivered): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        rate,
        lat.len(),
        alerts,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        lat.last().copied().unwrap_or(f64::NAN)
    );
}

//! Event time in the service against a real broker (tansu): a topic that never speaks does not
//! hold the alerts back, a stream whose producers stopped is decided by the wall clock (no tick
//! event needed), and a forged far-future timestamp neither blinds the engine nor poisons the
//! clock a restart restores.

mod broker;
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use broker::service::{
    PARTITIONS, alert_ids, multiset, service_config, spread, start, topics, uid,
};

fn replay_ids(file: &std::path::Path, lateness: &str) -> BTreeMap<String, usize> {
    let (alerts, _, _d) =
        common::replay_per_finding(&common::pack(), &[file.to_path_buf()], 2, lateness);
    multiset(common::alerts(&alerts).iter().map(uid))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn http_get(addr: &str, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// `credtrail run` as shipped, stopped with SIGTERM when dropped.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn terminate(&mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "credtrail run did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bug: with the shipped config (inputs `cloudtrail` and `windows`), events produced without
/// keys to `cloudtrail` only gave no alert: the partitions of `windows`, which never spoke,
/// held the hits waiting for event time forever, and nothing said so. And once the producers
/// stopped, the last chains waited for a next event that never came.
#[test]
fn the_shipped_config_alerts_with_an_empty_windows_topic_and_after_producers_stop() {
    let b = broker::private();
    broker::create_topics(
        &b.addr,
        &[
            ("cloudtrail", 3),
            ("windows", 2),
            ("credtrail-alerts", 1),
            ("credtrail-dead-letters", 1),
            ("credtrail-checkpoints", 1),
        ],
    );
    let input = common::shared("cloudtrail/invictus-stratus/cloudtrail_records.jsonl");
    let expected = replay_ids(&input, "15m");
    assert!(
        expected.values().sum::<usize>() >= 1,
        "replay alerts on invictus"
    );
    // No key: round robin over the partitions, as shippers do. Then the producer stops.
    let text = std::fs::read_to_string(&input).unwrap();
    let messages: Vec<(i32, Vec<u8>)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| ((i % 3) as i32, l.as_bytes().to_vec()))
        .collect();
    broker::produce(&b.addr, "cloudtrail", &messages);

    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("credtrail.log");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_credtrail"))
        .args(["run", "--config", "deploy/credtrail.toml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // The shipped file as it is; only where the broker and the metrics endpoint are.
        .env("CREDTRAIL_KAFKA_BROKERS", &b.addr)
        .env("CREDTRAIL_METRICS_LISTEN", &metrics_addr)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("credtrail run");
    let mut svc = Service {
        child,
        log: log.clone(),
    };

    // While `windows` has not been idle for the idle timeout (30 s), it holds event time back,
    // and the gauge says so.
    let mut holders = String::new();
    let gauge_by = Instant::now() + Duration::from_secs(25);
    while Instant::now() < gauge_by {
        holders = http_get(&metrics_addr, "/metrics");
        if holders.contains("credtrail_partition_holds_event_time{topic=\"windows\"") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        holders.contains("credtrail_partition_holds_event_time{topic=\"windows\""),
        "{holders}"
    );

    // Idle timeout (30 s) plus margin; the lateness (15 min) does not apply to data this old.
    let mut alerts = broker::Reader::new(&b.addr, "credtrail-alerts", 1);
    alerts.read(
        expected.values().sum(),
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    let took = started.elapsed();
    eprintln!(
        "all {} alerts on the topic {took:?} after the start",
        alerts.seen.len()
    );
    let code = svc.terminate();
    let logged = std::fs::read_to_string(&svc.log).unwrap_or_default();
    assert_eq!(
        alert_ids(&alerts.seen),
        expected,
        "alert ids = replay's (after {took:?}); log:\n{logged}"
    );
    assert!(
        took < Duration::from_secs(30 + 60),
        "within the idle timeout and a margin: {took:?}"
    );
    assert!(
        logged.contains("event time is held back") && logged.contains("windows/"),
        "a log line names what holds time back:\n{logged}"
    );
    assert_eq!(code, 0, "{logged}");
}

const FORGED: &str = r#"{"eventVersion":"1.08","eventTime":"2099-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"forged-2099","awsRegion":"eu-west-1","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/forger","accountId":"111122223333"}}"#;

/// Bug: one event dated 2099 moved its partition's clock to 2099, every later event of the
/// partition was late, no alert came out, and the checkpoint carried the poisoned clock into the
/// next run. Now it is a `future` dead letter (wall clock plus 15 minutes), once, across a
/// restart, and the demo's 7 alerts come out.
#[test]
fn a_forged_2099_event_is_one_future_dead_letter_and_a_restart_keeps_a_clean_clock() {
    let b = broker::broker();
    let t = topics("future", &b.addr);
    let config = service_config(&b.addr, &t);
    let demo = common::root().join("datasets/demo/events.jsonl");
    let expected = replay_ids(&demo, "5m");
    assert_eq!(expected.values().sum::<usize>(), 7);
    let text = std::fs::read_to_string(&demo).unwrap();
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    lines.insert(100, FORGED.as_bytes().to_vec());
    let split = 640;
    broker::produce(&b.addr, &t.input, &spread(&lines[..split], 0));
    let running = start(config.clone());
    running.wait_events(split as u64, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(600));
    let first_future = running.metrics.future_events.load(Ordering::Relaxed);
    let first = running.stop();
    assert!(first.alerts_delivered >= 1, "{first:?}");
    assert_eq!(first_future, 1, "the metric counts the future event");

    // The rest, then an event per partition after the data (and before the wall clock).
    let mut rest = spread(&lines[split..], split);
    for p in 0..PARTITIONS {
        rest.push((p, format!(r#"{{"eventVersion":"1.08","eventSource":"credtrail.test","eventName":"Tick","eventTime":"2026-11-03T00:00:00Z","eventID":"tick-{p}","userIdentity":{{"arn":"arn:aws:iam::1:user/tick"}}}}"#).into_bytes()));
    }
    broker::produce(&b.addr, &t.input, &rest);
    let running = start(config);
    let mut alerts = broker::Reader::new(&b.addr, &t.alerts, 1);
    alerts.read(7, Duration::from_secs(90), Duration::from_secs(3));
    let future_metric = running.metrics.future_events.load(Ordering::Relaxed);
    running.stop();
    assert_eq!(
        alert_ids(&alerts.seen),
        expected,
        "the demo's 7 alerts, once each"
    );
    let mut dead = broker::Reader::new(&b.addr, &t.dead, 1);
    dead.read(2, Duration::from_secs(10), Duration::from_secs(2));
    let future: Vec<&broker::Read> = dead
        .seen
        .iter()
        .filter(|r| r.header("credtrail.reason") == Some("future"))
        .collect();
    assert_eq!(future.len(), 1, "one future dead letter: {:?}", dead.seen);
    assert_eq!(future[0].payload, FORGED.as_bytes());
    assert!(
        (future[0].header("credtrail.reason_detail"))
            .is_some_and(|d| d.contains("ahead of the wall clock")),
        "{:?}",
        future[0].headers
    );
    assert_eq!(
        dead.seen.len(),
        1,
        "nothing else dead-lettered (no late event)"
    );
    assert_eq!(future_metric, 0, "the restart does not count it again");
}

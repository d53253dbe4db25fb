//! Cluster members on a real broker (tansu): input spread over partitions with no regard to
//! identity, hits repartitioned by identity through the hits topic, credential links shared
//! through the lineage topic; the alert topic holds the alert ids `replay` gives.

mod broker;
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use broker::service::*;

const INPUT_PARTITIONS: i32 = 6;
const HIT_PARTITIONS: i32 = 4;

struct ClusterTopics {
    base: Topics,
    hits: String,
    lineage: String,
    changelog: String,
}

fn cluster_topics(name: &str, addr: &str) -> ClusterTopics {
    let base = Topics {
        input: broker::unique(&format!("{name}-in")),
        alerts: broker::unique(&format!("{name}-alerts")),
        dead: broker::unique(&format!("{name}-dead")),
        checkpoints: broker::unique(&format!("{name}-checkpoints")),
        group: broker::unique(&format!("{name}-group")),
    };
    let t = ClusterTopics {
        hits: broker::unique(&format!("{name}-hits")),
        lineage: broker::unique(&format!("{name}-lineage")),
        changelog: broker::unique(&format!("{name}-changelog")),
        base,
    };
    broker::create_topics(
        addr,
        &[
            (&t.base.input, INPUT_PARTITIONS),
            (&t.base.alerts, 1),
            (&t.base.dead, 1),
            (&t.base.checkpoints, 1),
            (&t.hits, HIT_PARTITIONS),
            (&t.lineage, 1),
            (&t.changelog, HIT_PARTITIONS),
        ],
    );
    t
}

fn cluster_config(addr: &str, t: &ClusterTopics) -> credtrail::config::ServiceConfig {
    let extra = format!(
        "[cluster]\nenabled = true\nhits_topic = \"{}\"\nlineage_topic = \"{}\"\nchangelog_topic = \"{}\"\n",
        t.hits, t.lineage, t.changelog
    );
    let mut c = service_config_with(addr, &t.base, &extra);
    // tansu serves a fetch from inside a record batch from the next batch: one record per
    // batch, so a stage that resumes mid-topic misses nothing.
    c.kafka.producer.insert(
        "batch.num.messages".into(),
        credtrail::config::PropertyValue::Plain("1".into()),
    );
    c
}

/// The demo's lines round-robin over the input partitions, then one tick per partition past
/// the data (as the end of a file moves a replay's clock).
fn round_robin(lines: &[Vec<u8>]) -> Vec<(i32, Vec<u8>)> {
    let mut out: Vec<(i32, Vec<u8>)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| ((i % INPUT_PARTITIONS as usize) as i32, l.clone()))
        .collect();
    for p in 0..INPUT_PARTITIONS {
        let e = format!(
            r#"{{"eventVersion":"1.08","eventSource":"credtrail.test","eventName":"Tick","eventTime":"2026-11-03T00:00:00Z","eventID":"tick-{p}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/tick"}}}}"#
        );
        out.push((p, e.into_bytes()));
    }
    out
}

#[test]
fn one_member_alone_gives_the_alerts_of_replay_through_the_hits_topic() {
    let b = broker::broker();
    let t = cluster_topics("cluster1", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    assert_eq!(expected.values().sum::<usize>(), 7, "the demo's alerts");
    broker::produce(&b.addr, &t.base.input, &round_robin(&lines));

    let messages = round_robin(&lines);
    let running = start(cluster_config(&b.addr, &t));
    let mut alerts = broker::Reader::new(&b.addr, &t.base.alerts, 1);
    alerts.read(7, Duration::from_secs(120), Duration::from_secs(3));
    let metrics = running.metrics.clone();
    // Each engine of the member has its gauges (a regression: both wrote one set, and the
    // partitions, watermark and state shown were whichever engine wrote last).
    let text = metrics.render();
    let gauge = |series: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    };
    assert_eq!(
        gauge("credtrail_partitions_assigned{stage=\"input\"}"),
        INPUT_PARTITIONS as i64
    );
    assert_eq!(
        gauge("credtrail_partitions_assigned{stage=\"correlate\"}"),
        HIT_PARTITIONS as i64
    );
    let (w1, w2) = (
        gauge("credtrail_watermark_milliseconds{stage=\"input\"}"),
        gauge("credtrail_watermark_milliseconds{stage=\"correlate\"}"),
    );
    assert!(
        w1 > 0 && w2 > 0 && w2 <= w1,
        "stage 2 follows stage 1: {w1} {w2}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("credtrail_partitions_assigned ")),
        "no unlabelled sample beside the per-stage ones"
    );
    let report = running.stop();
    assert_eq!(alert_ids(&alerts.seen), expected, "alert ids = replay's");
    assert_eq!(report.alerts_delivered, 7);
    // Input events are counted once; the records stage 2 reads are counted apart.
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(count(&metrics.events_in), messages.len() as u64);
    let hits_out = count(&metrics.cluster_hits_out);
    assert!(hits_out > 0);
    assert!(
        count(&metrics.cluster_records_in) > hits_out,
        "hits and stamps"
    );
    assert_eq!(count(&metrics.cluster_copies), 0);
    // Stage 1 committed its input to the end once the records were stored (a regression: its
    // commit barriers waited for reports from as many shards as configured, not its one
    // forwarder, and never completed).
    let committed = broker::committed(&b.addr, &t.base.group, &t.base.input, INPUT_PARTITIONS);
    let produced: Vec<i64> = (0..INPUT_PARTITIONS)
        .map(|p| messages.iter().filter(|(q, _)| *q == p).count() as i64)
        .collect();
    let offsets: Vec<i64> = committed.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, produced, "stage 1 commits its input to the end");
    let mut hits = broker::Reader::new(&b.addr, &t.hits, HIT_PARTITIONS);
    hits.read(1, Duration::from_secs(10), Duration::from_secs(1));
    let partitions: std::collections::BTreeSet<i32> =
        hits.seen.iter().map(|r| r.partition).collect();
    assert!(
        partitions.len() >= 2,
        "hits spread by identity: {partitions:?}"
    );
}

/// Three members joining at once. The answer is replay's set of alert ids; each once only
/// when the broker never gives a partition to a member while another still holds it. tansu
/// (the test broker) sometimes does when members join together: in a failing run (logs with
/// thread ids) stage 2 of one member was assigned hits partitions 1 and 3 while the member
/// holding them got no revocation for a second or more, so both decided partition 1's six
/// chains and the topic held them twice, with their same ids. That is the unfenced overlap
/// the README names (a zombie owner); handing partitions over in order is checked "each once"
/// by `members_joining_and_leaving_hand_chains_in_flight_over_through_the_changelog`.
#[test]
fn three_members_give_the_alerts_of_replay() {
    let b = broker::broker();
    let t = cluster_topics("cluster3", &b.addr);
    let lines = dataset();
    let expected = replay_ids(&lines);
    broker::produce(&b.addr, &t.base.input, &round_robin(&lines));

    let members: Vec<Running> = (0..3).map(|_| start(cluster_config(&b.addr, &t))).collect();
    let mut alerts = broker::Reader::new(&b.addr, &t.base.alerts, 1);
    alerts.read(7, Duration::from_secs(180), Duration::from_secs(5));
    for m in members {
        m.stop();
    }
    let seen = alert_ids(&alerts.seen);
    if seen != expected {
        // Which decisions came twice, in the order the topic holds them.
        let order: Vec<(i64, &str)> = (alerts.seen.iter())
            .map(|r| (r.offset, r.header("credtrail.alert_id").unwrap_or("?")))
            .collect();
        eprintln!("alert ids by offset: {order:?}");
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "alert ids = replay's"
    );
}

/// A `credtrail run` process of the cluster, its output in a log file.
struct Member {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Member {
    fn spawn(config: &std::path::Path, dir: &std::path::Path, name: &str) -> Member {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_credtrail"))
            .args(["run", "--config"])
            .arg(config)
            .current_dir(common::root())
            .env("RUST_LOG", "credtrail=info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Member { child, log }
    }

    /// SIGTERM, then wait for the graceful stop; the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not stop", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no drain, no commit.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// A member still running when its test fails (a panic unwinds past `stop`) is killed, not
/// left behind: orphaned members kept polling and took a sixth of a core each from what ran
/// after them.
impl Drop for Member {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn config_file(addr: &str, t: &ClusterTopics, dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        r#"
[kafka]
brokers = "{addr}"
group = "{group}"
alert_topic = "{alerts}"
dead_letter_topic = "{dead}"
checkpoint_topic = "{checkpoints}"
commit_interval = "200ms"
idle_timeout = "45s"
[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
[kafka.producer]
"linger.ms" = 1
"batch.num.messages" = 1
[[input]]
topic = "{input}"
profile = "auto"
lateness = "5m"
[rules]
paths = ["{rules}"]
watch = false
[engine]
shards = 2
workers = 1
batch_events = 64
[shutdown]
deadline = "20s"
[metrics]
listen = ""
[log]
format = "text"
[cluster]
enabled = true
hits_topic = "{hits}"
lineage_topic = "{lineage}"
changelog_topic = "{changelog}"
"#,
        group = t.base.group,
        alerts = t.base.alerts,
        dead = t.base.dead,
        checkpoints = t.base.checkpoints,
        input = t.base.input,
        hits = t.hits,
        lineage = t.lineage,
        changelog = t.changelog,
        rules = common::root().join("rules").display(),
    );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The demo round-robin over the input partitions in two halves and the ticks after them, and
/// the alert ids `replay` gives on it.
struct Halves {
    expected: std::collections::BTreeSet<String>,
    first: Vec<(i32, Vec<u8>)>,
    second: Vec<(i32, Vec<u8>)>,
    ticks: Vec<(i32, Vec<u8>)>,
}

fn halves() -> Halves {
    let lines = dataset();
    let mut events = round_robin(&lines);
    let ticks = events.split_off(events.len() - INPUT_PARTITIONS as usize);
    let second = events.split_off(events.len() / 2);
    Halves {
        expected: replay_ids(&lines).into_keys().collect(),
        first: events,
        second,
        ticks,
    }
}

/// Reads the alert topic until `n` distinct ids came or `limit` passed, then a few seconds
/// more for any copy.
fn read_alerts(addr: &str, t: &ClusterTopics, n: usize, limit: Duration) -> broker::Reader {
    let mut alerts = broker::Reader::new(addr, &t.base.alerts, 1);
    let deadline = std::time::Instant::now() + limit;
    while id_set(&alerts.seen).len() < n && std::time::Instant::now() < deadline {
        alerts.read(
            alerts.seen.len() + 1,
            Duration::from_secs(5),
            Duration::ZERO,
        );
    }
    alerts.read(0, Duration::from_secs(3), Duration::from_secs(3));
    alerts
}

/// The ids seen, each once, and whether any id was outside `expected`.
fn id_set(reads: &[broker::Read]) -> std::collections::BTreeSet<String> {
    alert_ids(reads).into_keys().collect()
}

#[test]
fn three_processes_one_killed_and_restarted_and_a_fourth_joining_give_the_alert_ids_of_replay() {
    let b = broker::broker();
    let t = cluster_topics("cluster-procs", &b.addr);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&b.addr, &t, dir.path());
    let Halves {
        expected,
        first,
        second,
        ticks,
    } = halves();
    broker::produce(&b.addr, &t.base.input, &first);

    let mut members: Vec<Member> = (0..3)
        .map(|i| Member::spawn(&config, dir.path(), &format!("m{i}")))
        .collect();
    std::thread::sleep(Duration::from_secs(8));
    // Mid-stream: one member dies without a word and comes back; a fourth joins.
    members.remove(0).kill();
    broker::produce(&b.addr, &t.base.input, &second[..second.len() / 2]);
    std::thread::sleep(Duration::from_secs(2));
    members.push(Member::spawn(&config, dir.path(), "m0-again"));
    members.push(Member::spawn(&config, dir.path(), "m3"));
    broker::produce(&b.addr, &t.base.input, &second[second.len() / 2..]);
    broker::produce(&b.addr, &t.base.input, &ticks);

    let alerts = read_alerts(&b.addr, &t, expected.len(), Duration::from_secs(240));
    let statuses: Vec<_> = members.into_iter().map(Member::stop).collect();
    let seen = id_set(&alerts.seen);
    if seen != expected {
        let mut dead = broker::Reader::new(&b.addr, &t.base.dead, 1);
        dead.read(100_000, Duration::from_secs(5), Duration::ZERO);
        let mut reasons = BTreeMap::new();
        for r in &dead.seen {
            let why = r.header("credtrail.reason_detail").unwrap_or("?");
            *reasons
                .entry(why.chars().take(160).collect::<String>())
                .or_insert(0) += 1;
        }
        eprintln!("dead letters by reason: {reasons:#?}");
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!(
                    "--- {}\n{}",
                    p.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
    assert_eq!(seen, expected, "the alert ids on the topic = replay's");
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
}

/// The changelog's partitions as read now: per partition, the marker if it is the last record
/// (fences aside), and how many state records and tombstones were written.
fn changelog_tail(
    addr: &str,
    topic: &str,
) -> Vec<(Option<credtrail::cluster::changelog::Marker>, usize)> {
    use credtrail::cluster::changelog::{FENCE_KEY, MARKER_KEY, Marker};
    let mut r = broker::Reader::new(addr, topic, HIT_PARTITIONS);
    r.read(usize::MAX, Duration::from_secs(3), Duration::from_secs(1));
    (0..HIT_PARTITIONS)
        .map(|p| {
            let recs: Vec<&broker::Read> = (r.seen.iter())
                .filter(|m| m.partition == p && m.key.as_deref() != Some(FENCE_KEY))
                .collect();
            let states = recs
                .iter()
                .filter(|m| m.key.as_deref() != Some(MARKER_KEY))
                .count();
            let marker = recs
                .last()
                .filter(|m| m.key.as_deref() == Some(MARKER_KEY))
                .and_then(|m| Marker::from_bytes(&m.payload).ok());
            (marker, states)
        })
        .collect()
}

/// Restore after SIGKILL: a member is killed while chains are in flight, after its changelog
/// recorded them; the member started in its place restores the states from the changelog
/// (reading the hits topic from the marker's end, not from the commit), and the alert topic
/// holds exactly the ids `replay` gives.
#[test]
fn a_member_killed_with_chains_in_flight_is_restored_from_the_changelog() {
    let b = broker::broker();
    let t = cluster_topics("cluster-restore", &b.addr);
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(&b.addr, &t, dir.path());
    let Halves {
        expected,
        first,
        second,
        ticks,
    } = halves();
    broker::produce(&b.addr, &t.base.input, &first);

    let member = Member::spawn(&config, dir.path(), "first");
    // Wait until some partition's changelog ends in a marker over live states (before the
    // idle timeout decides them all).
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let live = loop {
        let tail = changelog_tail(&b.addr, &t.changelog);
        let live: u64 = tail
            .iter()
            .filter_map(|(m, _)| m.as_ref())
            .map(|m| m.live)
            .sum();
        if live > 0 || std::time::Instant::now() > deadline {
            break live;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        live > 0,
        "the changelog holds states in flight behind a marker"
    );
    member.kill();

    let again = Member::spawn(&config, dir.path(), "again");
    broker::produce(&b.addr, &t.base.input, &second);
    broker::produce(&b.addr, &t.base.input, &ticks);
    let alerts = read_alerts(&b.addr, &t, expected.len(), Duration::from_secs(120));
    let log = again.log.clone();
    assert!(again.stop().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let restored: u64 = (text.lines())
        .filter(|l| l.contains("partition restored from the changelog"))
        .filter_map(|l| {
            let plain: String = l
                .split('\u{1b}')
                .map(|s| s.split_once('m').map_or(s, |x| x.1))
                .collect();
            plain
                .split("states=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        restored > 0,
        "the new member restored states from the changelog:\n{text}"
    );
    assert_eq!(
        id_set(&alerts.seen),
        expected,
        "the alert ids on the topic = replay's"
    );
}

/// Rebalance handoff: a second member joins while the first holds chains in flight, then the
/// first leaves. At each rebalance the old owner writes its partitions out before it gives
/// them up (the drain) and the new owner restores them from the changelog; in the end every
/// chain went through it, and the alert topic holds exactly `replay`'s ids.
#[test]
fn members_joining_and_leaving_hand_chains_in_flight_over_through_the_changelog() {
    let b = broker::broker();
    let t = cluster_topics("cluster-handoff", &b.addr);
    let Halves {
        expected,
        first,
        second,
        ticks,
    } = halves();
    broker::produce(&b.addr, &t.base.input, &first);

    let one = start(cluster_config(&b.addr, &t));
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    while (changelog_tail(&b.addr, &t.changelog).iter())
        .filter_map(|(m, _)| m.as_ref())
        .map(|m| m.live)
        .sum::<u64>()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no state in the changelog"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let two = start(cluster_config(&b.addr, &t));
    let count =
        |r: &Running, c: fn(&credtrail::metrics::Metrics) -> &std::sync::atomic::AtomicU64| {
            c(&r.metrics).load(std::sync::atomic::Ordering::Relaxed)
        };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&two, |m| &m.changelog_restores) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the joining member restored nothing"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The first leaves: the second takes every partition over, with its state.
    let restores = count(&two, |m| &m.changelog_restores);
    let first_restored = count(&one, |m| &m.changelog_restored_states);
    let first_unusable = count(&one, |m| &m.changelog_unusable);
    one.stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&two, |m| &m.changelog_restores) == restores {
        assert!(
            std::time::Instant::now() < deadline,
            "the partitions left were not restored"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    broker::produce(&b.addr, &t.base.input, &second);
    broker::produce(&b.addr, &t.base.input, &ticks);
    let alerts = read_alerts(&b.addr, &t, expected.len(), Duration::from_secs(120));
    let restored = first_restored + count(&two, |m| &m.changelog_restored_states);
    let unusable = first_unusable + count(&two, |m| &m.changelog_unusable);
    two.stop();
    assert!(restored > 0, "states moved through the changelog");
    assert_eq!(unusable, 0, "every partition handed over was restorable");
    // Each once: what the old owner acknowledged and the marker did not cover is suppressed.
    let want: BTreeMap<String, usize> = expected.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        alert_ids(&alerts.seen),
        want,
        "the alerts on the topic = replay's, each once"
    );
}

//! The Prometheus text exposition of every series: counters, the gauges of each engine of the
//! instance (labelled by stage on a cluster member), labelled series and the latency histogram.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Gauges, LATENCY_BUCKETS, Metrics, Part};

impl Metrics {
    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters = [
            (
                "credtrail_events_total",
                "Events read from input topics.",
                g(&self.events_in),
            ),
            (
                "credtrail_scan_memo_hits_total",
                "Long texts of a field walked without a skip that a worker's scan memo answered.",
                g(&self.scan_memo_hits),
            ),
            (
                "credtrail_scan_memo_walks_total",
                "Long texts of a field without a skip that a worker walked (not in its scan memo).",
                g(&self.scan_memo_walks),
            ),
            (
                "credtrail_cluster_hits_out_total",
                "Cluster stage 1: resolved hits written to the hits topic.",
                g(&self.cluster_hits_out),
            ),
            (
                "credtrail_cluster_records_in_total",
                "Cluster stage 2: hit and stamp records read from the hits topic.",
                g(&self.cluster_records_in),
            ),
            (
                "credtrail_cluster_copies_dropped_total",
                "Cluster stage 2: hits older than their input partition's stamp, copies a restarted stage 1 wrote again.",
                g(&self.cluster_copies),
            ),
            (
                "credtrail_changelog_records_total",
                "Cluster stage 2: state records and tombstones written to the changelog.",
                g(&self.changelog_records),
            ),
            (
                "credtrail_changelog_markers_total",
                "Cluster stage 2: changelog markers written (a partition restorable at that barrier).",
                g(&self.changelog_markers),
            ),
            (
                "credtrail_changelog_restores_total",
                "Cluster stage 2: hits partitions restored from their changelog on assignment.",
                g(&self.changelog_restores),
            ),
            (
                "credtrail_changelog_restored_states_total",
                "Cluster stage 2: correlation states restored from the changelog.",
                g(&self.changelog_restored_states),
            ),
            (
                "credtrail_changelog_skipped_records_total",
                "Cluster stage 2: hits-topic records a restore did not replay (marker end minus committed offset).",
                g(&self.changelog_skipped_records),
            ),
            (
                "credtrail_changelog_unusable_total",
                "Cluster stage 2: assigned partitions whose changelog could not be restored from; replayed from the commit.",
                g(&self.changelog_unusable),
            ),
            (
                "credtrail_late_events_total",
                "Events older than their partition's watermark, dead-lettered.",
                g(&self.late_events),
            ),
            (
                "credtrail_future_events_total",
                "Events more than their input's max_future_skew ahead of the wall clock, dead-lettered.",
                g(&self.future_events),
            ),
            (
                "credtrail_alerts_total",
                "Alerts acknowledged by the producer.",
                g(&self.alerts_delivered),
            ),
            (
                "credtrail_alerts_suppressed_total",
                "Alerts decided again by a replay after a restart and not produced twice.",
                g(&self.alerts_suppressed),
            ),
            (
                "credtrail_http_connections_evicted_total",
                "Endpoint connections closed, oldest first, to stay under the connection cap.",
                g(&self.http_connections_evicted),
            ),
            (
                "credtrail_state_evicted_total",
                "Correlation states evicted under the memory budget (lowest rank of the rule holding the most bytes first).",
                g(&self.state_evicted),
            ),
            (
                "credtrail_lineage_links_evicted_total",
                "Credential lineage links evicted under the memory budget (unused links first).",
                g(&self.lineage_evicted),
            ),
            (
                "credtrail_produce_retries_total",
                "Alert or dead-letter messages produced again after a delivery error.",
                g(&self.produce_retries),
            ),
            (
                "credtrail_commits_total",
                "Offset commits requested.",
                g(&self.commits),
            ),
            (
                "credtrail_commit_failures_total",
                "Offset commits that failed.",
                g(&self.commit_failures),
            ),
            (
                "credtrail_rule_reloads_total",
                "Rule sets reloaded and swapped in.",
                g(&self.rule_reloads),
            ),
            (
                "credtrail_rule_reload_failures_total",
                "Rule reloads that failed; the last good set stayed.",
                g(&self.rule_reload_failures),
            ),
            (
                "credtrail_inventory_records_total",
                "Inventory topic records applied.",
                g(&self.inventory_records),
            ),
            (
                "credtrail_inventory_rejected_total",
                "Inventory topic records refused (bad JSON or entry, no key, overlay full).",
                g(&self.inventory_rejected),
            ),
            (
                "credtrail_inventory_versions_total",
                "Inventories published to the shards (file and topic updates).",
                g(&self.inventory_versions),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        // Per engine: unlabelled on one engine, `stage="input"` and `stage="correlate"` on a
        // cluster member.
        let parts: &[Part] = if self.cluster.load(Ordering::Relaxed) {
            &[Part::Input, Part::Correlate]
        } else {
            &[Part::Input]
        };
        let label = |p: Part| {
            if parts.len() > 1 {
                format!("{{stage=\"{}\"}}", p.label())
            } else {
                String::new()
            }
        };
        type Read = fn(&Gauges) -> i64;
        let per_part: [(&str, &str, Read); 5] = [
            (
                "credtrail_state_groups",
                "Correlation states alive (group keys with a partial chain or window).",
                |g| g.state_groups.load(Ordering::Relaxed) as i64,
            ),
            (
                "credtrail_state_bytes",
                "Approximate bytes held by correlation state.",
                |g| g.state_bytes.load(Ordering::Relaxed) as i64,
            ),
            (
                "credtrail_partitions_assigned",
                "Partitions assigned to this instance (input topics; the hits topic for stage=\"correlate\").",
                |g| g.partitions_assigned.load(Ordering::Relaxed),
            ),
            (
                "credtrail_partitions_paused",
                "Partitions paused by backpressure.",
                |g| g.partitions_paused.load(Ordering::Relaxed),
            ),
            (
                "credtrail_watermark_milliseconds",
                "Engine event-time watermark, milliseconds since the epoch.",
                |g| g.watermark_ms.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, read) in per_part {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for &p in parts {
                let _ = writeln!(s, "{name}{} {}", label(p), read(self.gauges(p)));
            }
        }
        let gauges = [
            (
                "credtrail_ready",
                "1 when partitions are assigned and the service is not draining.",
                i64::from(self.is_ready()),
            ),
            (
                "credtrail_live",
                "1 when /livez answers 200: no pipeline thread stuck and the service not failed.",
                i64::from(self.is_live()),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP credtrail_partition_holds_event_time 1 for each partition whose watermark is engine time: what holds event time back.\n# TYPE credtrail_partition_holds_event_time gauge"
        );
        for &p in parts {
            let holders = self
                .gauges(p)
                .time_holders
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default();
            let stage = if parts.len() > 1 {
                format!(",stage=\"{}\"", p.label())
            } else {
                String::new()
            };
            for (topic, partition) in holders {
                let _ = writeln!(
                    s,
                    "credtrail_partition_holds_event_time{{topic=\"{}\",partition=\"{partition}\"{stage}}} 1",
                    escape(&topic)
                );
            }
        }
        self.with_labels(|l| {
            let _ = writeln!(s, "# HELP credtrail_dead_letters_total Events dead-lettered, by reason.\n# TYPE credtrail_dead_letters_total counter");
            for (reason, n) in &l.dead_letters {
                let _ = writeln!(s, "credtrail_dead_letters_total{{reason=\"{}\"}} {n}", escape(reason));
            }
            let _ = writeln!(s, "# HELP credtrail_rule_matches_total Events matched, by detection rule.\n# TYPE credtrail_rule_matches_total counter");
            for (rule, n) in &l.rule_matches {
                let _ = writeln!(s, "credtrail_rule_matches_total{{rule=\"{}\"}} {n}", escape(rule));
            }
            let _ = writeln!(s, "# HELP credtrail_rule_alerts_total Alerts acknowledged, by rule.\n# TYPE credtrail_rule_alerts_total counter");
            for (rule, n) in &l.alerts_by_rule {
                let _ = writeln!(s, "credtrail_rule_alerts_total{{rule=\"{}\"}} {n}", escape(rule));
            }
            let _ = writeln!(s, "# HELP credtrail_consumer_lag Messages behind the partition's end, from librdkafka statistics.\n# TYPE credtrail_consumer_lag gauge");
            for ((topic, partition), lag) in &l.consumer_lag {
                let _ = writeln!(s, "credtrail_consumer_lag{{topic=\"{}\",partition=\"{partition}\"}} {lag}", escape(topic));
            }
        });
        let name = "credtrail_event_to_alert_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} From reading an alert's last event to the producer's acknowledgement of the alert.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.latency_counts[i].load(Ordering::Relaxed);
            let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += self.latency_counts[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(
            s,
            "{name}_sum {}\n{name}_count {cumulative}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        s
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

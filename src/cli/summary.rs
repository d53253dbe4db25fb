//! The text summary `credtrail replay` prints to standard error: what was read, dropped,
//! matched and alerted, the state left, lineage and engine latency.

use credtrail::pipeline::{self, ReplayOptions, Summary};

/// The summary a replay prints to standard error.
pub fn print(s: &Summary, opts: &ReplayOptions) {
    let seq = &s.sequencer;
    eprintln!(
        "credtrail replay: {} events in {:.3} s ({:.0} events/s), {:.1} MB read, {} shard(s), {} worker(s)",
        seq.events,
        s.wall.as_secs_f64(),
        s.events_per_second(),
        s.bytes_read as f64 / 1e6,
        opts.shards,
        opts.workers
    );
    if seq.dead_letters > 0 {
        let reasons: Vec<String> = seq
            .by_reason
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let path = s
            .dead_letter_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        eprintln!(
            "  dead-lettered: {} ({}) -> {path}",
            seq.dead_letters,
            reasons.join(", ")
        );
    } else {
        eprintln!("  dead-lettered: 0");
    }
    eprintln!(
        "  input errors: {}{}",
        s.input_errors.len(),
        if s.input_errors.is_empty() {
            ""
        } else {
            " (inputs not read to their end; see the dead letters of kind input_error)"
        }
    );
    if !s.workers.salvaged.is_empty() {
        let by: Vec<String> = s
            .workers
            .salvaged
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        eprintln!(
            "  salvaged (over a decode limit, matched with the excess marked): {}",
            by.join(", ")
        );
    }
    if seq.copies > 0 {
        eprintln!(
            "  cluster records: {} hit(s) dropped as copies a restarted stage 1 wrote again",
            seq.copies
        );
    }
    eprintln!("  late events: {}", seq.late);
    eprintln!(
        "  future events (beyond --max-future-skew of their input's recent median): {}",
        seq.future
    );
    eprintln!(
        "  detection matches by rule ({} hits routed to shards):",
        seq.hits
    );
    for (title, n) in &s.matches_by_rule {
        eprintln!("    {n:>8}  {title}");
    }
    let shards_total =
        |f: fn(&credtrail::correlate::ShardStats) -> u64| s.shards.iter().map(f).sum::<u64>();
    eprintln!("  alerts: {}", s.alerts);
    for (rule, n) in &s.alerts_by_rule {
        eprintln!("    {n:>8}  {rule}");
    }
    eprintln!(
        "  identities in state at end of input: {} (~{} KB); peak per shard summed: {}; expired {}, evicted {}, duplicates dropped {}",
        s.states_at_end,
        s.state_bytes_at_end / 1024,
        shards_total(|x| x.peak_states),
        shards_total(|x| x.expired),
        shards_total(|x| x.evicted),
        shards_total(|x| x.duplicates),
    );
    eprintln!(
        "  correlation: windows and deadlines decided {}, findings fed to other correlations {}; rule budgets: states evicted {}, events trimmed {}",
        shards_total(|x| x.timers),
        shards_total(|x| x.derived),
        shards_total(|x| x.budget_evicted),
        shards_total(|x| x.trimmed),
    );
    let exhausted = shards_total(|x| x.id_exhausted);
    if exhausted > 0 {
        eprintln!(
            "  state ids: {exhausted} hit(s) dropped, every id of their group held by another group ({} collisions)",
            shards_total(|x| x.id_collisions),
        );
    }
    eprintln!(
        "  credential lineage: {} credential(s) linked to their minter, {} hit(s) resolved through a link, {} link(s) expired, {} evicted",
        s.lineage.links, s.lineage.resolved_through_links, s.lineage.expired, s.lineage.evicted
    );
    let memo = s.workers.memo;
    if memo.hits + memo.misses > 0 {
        eprintln!(
            "  scan memo (long texts whose field has no skip): {} of {} answered without a walk ({:.1} %)",
            memo.hits,
            memo.hits + memo.misses,
            100.0 * memo.hits as f64 / (memo.hits + memo.misses) as f64,
        );
    }
    let h = &s.workers.latency;
    if !h.is_empty() {
        eprintln!(
            "  engine latency per event (decode + match, 1 in {} sampled): p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us",
            pipeline::worker::LATENCY_SAMPLE,
            h.value_at_quantile(0.50) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.value_at_quantile(0.999) as f64 / 1e3,
        );
    }
}

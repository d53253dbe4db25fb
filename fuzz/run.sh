#!/usr/bin/env bash
# Runs fuzz targets for a bounded time each and fails if any found a crash or a hang.
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target)
# Builds the targets with cargo-afl (AFL++ on the stable toolchain; `cargo install cargo-afl`),
# starts from the committed seed corpus in corpus/TARGET and writes findings to out/TARGET.
# A crash found is in out/TARGET/default/crashes/: reproduce it with
#   target/release/TARGET < that-file
# and turn it into a regression test in the engine.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode rules pipeline config checkpoint records changelog)

cargo afl build --release --locked --quiet
# A shared machine: no CPU binding, no frequency check, no core-dump handler needed.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_SKIP_CRASHES=0 AFL_QUIET=1
mkdir -p out
status=0
for t in "${targets[@]}"; do
    rm -rf "out/$t"
    echo "== fuzz $t for ${seconds}s"
    cargo afl fuzz -V "$seconds" -t 5000 -i "corpus/$t" -o "out/$t" "target/release/$t" \
        > "out-$t.log" 2>&1 || { echo "afl-fuzz failed:"; tail -20 "out-$t.log"; status=1; continue; }
    stats="out/$t/default/fuzzer_stats"
    execs=$(awk -F': *' '/^execs_done/ {print $2}' "$stats")
    crashes=$(awk -F': *' '/^saved_crashes/ {print $2}' "$stats")
    hangs=$(awk -F': *' '/^saved_hangs/ {print $2}' "$stats")
    paths=$(awk -F': *' '/^corpus_count/ {print $2}' "$stats")
    echo "   $execs executions, corpus $paths, crashes $crashes, hangs $hangs"
    if [ "$crashes" != "0" ] || [ "$hangs" != "0" ]; then
        ls "out/$t/default/crashes" "out/$t/default/hangs" 2>/dev/null || true
        status=1
    fi
    rm -f "out-$t.log"
done
exit $status

#!/usr/bin/env bash
# A Kafka-protocol broker for development and tests: tansu with in-memory storage on a free
# loopback port. Prints `CREDTRAIL_TEST_BROKER=127.0.0.1:PORT`; stops the broker on Ctrl-C.
#
#   deploy/local-broker.sh                   # run in the foreground
#   deploy/local-broker.sh -- cargo test     # run a command against it, then stop it
set -euo pipefail

if ! command -v tansu >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
    echo "tansu is not installed: cargo install tansu --locked --features dynostore" >&2
    exit 1
fi
TANSU="$(command -v tansu || echo "$HOME/.cargo/bin/tansu")"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="tcp://127.0.0.1:${PORT}"
"$TANSU" broker --storage-engine memory://tansu/ --listener-url "$URL" --advertised-listener-url "$URL" \
    >"${TMPDIR:-/tmp}/credtrail-tansu-${PORT}.log" 2>&1 &
BROKER_PID=$!
trap 'kill "$BROKER_PID" 2>/dev/null || true; wait "$BROKER_PID" 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/${PORT}") 2>/dev/null; then break; fi
    sleep 0.1
done
export CREDTRAIL_TEST_BROKER="127.0.0.1:${PORT}"
echo "CREDTRAIL_TEST_BROKER=${CREDTRAIL_TEST_BROKER}"
if [ "${1:-}" = "--" ]; then
    shift
    "$@"
else
    wait "$BROKER_PID"
fi

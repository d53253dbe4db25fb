#!/usr/bin/env bash
# Creates credtrail's topics with their partition counts and cleanup policies, from the
# environment (topics.env and credtrail.env). Safe to run again: a topic that exists is left as
# it is and checked. A compacted topic that is not compacted fails the run (a deleted checkpoint,
# link or snapshot is lost state); another partition count is reported, never changed
# (adding partitions to a keyed topic moves its keys).
#   KAFKA_BIN: where kafka-topics.sh lives (default /opt/kafka/bin, the apache/kafka image).
set -euo pipefail

bin=${KAFKA_BIN:-/opt/kafka/bin}
work=${TMPDIR:-/tmp}
props="$work/credtrail-topics.properties"

need() {
    local name=$1
    if [ -z "${!name:-}" ]; then
        echo "create-topics: $name is not set" >&2
        exit 2
    fi
}
count() {
    local name=$1
    need "$name"
    if ! [[ ${!name} =~ ^[1-9][0-9]*$ ]]; then
        echo "create-topics: $name=${!name}: give a positive whole number" >&2
        exit 2
    fi
}

need CREDTRAIL_KAFKA_BROKERS
for v in INPUT_PARTITIONS ALERT_PARTITIONS DEAD_LETTER_PARTITIONS CHECKPOINT_PARTITIONS \
    HITS_PARTITIONS LINEAGE_PARTITIONS REPLICATION_FACTOR MIN_INSYNC_REPLICAS HITS_RETENTION_MS; do
    count "$v"
done
for v in HITS_TOPIC LINEAGE_TOPIC CHANGELOG_TOPIC; do need "$v"; done
alerts=${CREDTRAIL_KAFKA_ALERT_TOPIC:-credtrail-alerts}
dead_letters=${CREDTRAIL_KAFKA_DEAD_LETTER_TOPIC:-credtrail-dead-letters}
checkpoints=${CREDTRAIL_KAFKA_CHECKPOINT_TOPIC:-credtrail-checkpoints}

# The admin client's settings; the password is read from a file, never the environment.
umask 077
: >"$props"
protocol=${SECURITY_PROTOCOL:-PLAINTEXT}
echo "security.protocol=$protocol" >>"$props"
case $protocol in
SASL_*)
    need SASL_MECHANISM
    need SASL_USERNAME
    password_file=${SASL_PASSWORD_FILE:-/var/run/secrets/credtrail-topics-admin/password}
    if [ ! -r "$password_file" ]; then
        echo "create-topics: $protocol needs the admin password in $password_file" >&2
        exit 2
    fi
    password=$(cat "$password_file")
    case $SASL_MECHANISM in
    PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
    SCRAM-*) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
    *)
        echo "create-topics: SASL_MECHANISM=$SASL_MECHANISM: PLAIN or SCRAM-SHA-256/512" >&2
        exit 2
        ;;
    esac
    echo "sasl.mechanism=$SASL_MECHANISM" >>"$props"
    echo "sasl.jaas.config=$module required username=\"$SASL_USERNAME\" password=\"$password\";" >>"$props"
    ;;
esac

topics() {
    "$bin/kafka-topics.sh" --bootstrap-server "$CREDTRAIL_KAFKA_BROKERS" \
        --command-config "$props" "$@"
}

failed=0
# create TOPIC PARTITIONS POLICY [--config K=V]...
create() {
    local topic=$1 partitions=$2 policy=$3
    shift 3
    topics --create --if-not-exists --topic "$topic" --partitions "$partitions" \
        --replication-factor "$REPLICATION_FACTOR" \
        --config "min.insync.replicas=$MIN_INSYNC_REPLICAS" \
        --config "cleanup.policy=$policy" "$@"
    # The first line of --describe: "Topic: T  TopicId: ...  PartitionCount: N  ...  Configs: ..."
    local head
    head=$(topics --describe --topic "$topic" | head -n 1)
    local actual
    actual=$(sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' <<<"$head")
    if [ "$actual" != "$partitions" ]; then
        echo "create-topics: warning: $topic has ${actual:-an unknown number of} partitions, not $partitions; left as it is" >&2
    fi
    if [ "$policy" = compact ] && ! grep -q 'cleanup\.policy=compact' <<<"$head"; then
        echo "create-topics: error: $topic exists without cleanup.policy=compact; credtrail's state in it would be deleted by retention" >&2
        failed=1
    fi
    echo "create-topics: $topic: $partitions partition(s), cleanup.policy=$policy"
}

IFS=, read -r -a inputs <<<"${INPUT_TOPICS:-}"
for t in "${inputs[@]}"; do
    t=${t// /}
    if [ -n "$t" ]; then create "$t" "$INPUT_PARTITIONS" delete; fi
done
create "$alerts" "$ALERT_PARTITIONS" delete
create "$dead_letters" "$DEAD_LETTER_PARTITIONS" delete
create "$checkpoints" "$CHECKPOINT_PARTITIONS" compact
create "$HITS_TOPIC" "$HITS_PARTITIONS" delete --config "retention.ms=$HITS_RETENTION_MS"
create "$LINEAGE_TOPIC" "$LINEAGE_PARTITIONS" compact
# Stage 2's state of hit partition p is snapshotted to changelog partition p.
create "$CHANGELOG_TOPIC" "$HITS_PARTITIONS" compact
rm -f "$props"
exit "$failed"

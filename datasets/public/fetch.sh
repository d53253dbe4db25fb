#!/usr/bin/env bash
# Fetches the public datasets the tests and benchmarks use into ../shared/datasets (or DEST),
# from their upstream repositories at the pinned commits in manifest.tsv, and checks every
# file's sha256 (of its content: .gz files are compared after decompression, since gzip output
# differs between gzip versions).
#
#   datasets/public/fetch.sh [DEST]        # needs curl, unzip, gzip, python3, sha256sum
#
# The invictus CloudTrail file is rebuilt from the upstream CloudTrail/*.json files (every
# Records entry, one JSON object per line, stable-sorted by eventTime). If its checksum differs,
# the script says so: the records are the same, their order among equal timestamps may differ.
# labels_derived.csv is derived by the dataset's curator, not upstream: it is not fetched.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="${1:-$here/../../../shared/datasets}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0

content_sha() {
  case "$1" in
    *.gz) gzip -dc "$1" | sha256sum | cut -c1-64 ;;
    *) sha256sum "$1" | cut -c1-64 ;;
  esac
}

while IFS=$'\t' read -r local repo commit path sha licence; do
  [[ -z "$local" || "$local" == \#* ]] && continue
  out="$dest/$local"
  mkdir -p "$(dirname "$out")"
  if [[ -f "$out" && "$(content_sha "$out")" == "$sha" ]]; then
    echo "ok (present)  $local"
    continue
  fi
  case "$path" in
    *.zip)
      curl -fsSL "https://raw.githubusercontent.com/$repo/$commit/$path" -o "$tmp/d.zip"
      rm -rf "$tmp/x" && mkdir "$tmp/x" && unzip -q "$tmp/d.zip" -d "$tmp/x"
      member="$(find "$tmp/x" -type f -name '*.json' | head -1)"
      case "$out" in
        *.gz) gzip -9nc "$member" > "$out" ;;
        *) cp "$member" "$out" ;;
      esac
      ;;
    CloudTrail/*)
      curl -fsSL "https://codeload.github.com/$repo/tar.gz/$commit" -o "$tmp/repo.tgz"
      rm -rf "$tmp/r" && mkdir "$tmp/r" && tar -xzf "$tmp/repo.tgz" -C "$tmp/r"
      python3 - "$tmp/r" "$out" <<'PY'
import glob, json, sys
records = []
for f in sorted(glob.glob(sys.argv[1] + "/*/CloudTrail/*.json")):
    records.extend(json.load(open(f))["Records"])
records.sort(key=lambda r: r["eventTime"])
with open(sys.argv[2], "w") as out:
    for r in records:
        out.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n")
PY
      ;;
  esac
  got="$(content_sha "$out")"
  if [[ "$got" == "$sha" ]]; then
    echo "ok (fetched)  $local"
  else
    echo "MISMATCH      $local: sha256 $got, manifest $sha" >&2
    status=1
  fi
done < "$here/manifest.tsv"
exit $status

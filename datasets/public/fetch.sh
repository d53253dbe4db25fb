#!/usr/bin/env bash
# Fetches the public data the tests and benchmarks read into one root, from the upstream
# repositories at the pinned commits in manifest.tsv, and checks every sha256:
#
#   ROOT/datasets/...    public attack logs (CloudTrail, Windows)
#   ROOT/sigma/          the 315 chain-tagged SigmaHQ rules: the files listed in sigma.sha256
#   ROOT/sigmahq-full/   every SigmaHQ rule tree at the same commit
#
#   datasets/public/fetch.sh [--from DIR] [ROOT]
#
# ROOT defaults to where the tests look: CREDTRAIL_SHARED if set (relative to the project),
# else ../shared next to the project if it exists, else target/shared. `--from DIR` copies from
# DIR, a root laid out as above (another machine's ../shared, a mirror), instead of downloading;
# the checksums are checked the same way. An entry already present with the right checksum is
# kept; one whose checksum does not match is not installed, and the script exits 1.
#
# Needs bash, sha256sum, gzip, tar; to download also curl or wget, unzip and python3.
# Checksums: a file's is of its content (.gz files after decompression, since gzip output differs
# between gzip versions); a tree's is of its listing, the `sha256sum` line of every file under its
# upstream paths sorted by path (for sigma, that listing is sigma.sha256 itself).
#
# The invictus CloudTrail file is rebuilt from the upstream CloudTrail/*.json files (every
# Records entry, one JSON object per line, stable-sorted by eventTime). If its checksum differs,
# the script says so: the records are the same, their order among equal timestamps may differ.
# labels_derived.csv was derived by the dataset's curator and has no upstream: this repository
# carries it (the `vendored` kind).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
project="$(cd "$here/../.." && pwd)"

from=""
if [[ "${1:-}" == "--from" ]]; then
  from="$(cd "${2:?--from needs a directory}" && pwd)"
  shift 2
fi
if [[ $# -gt 0 ]]; then
  root="$1"
elif [[ -n "${CREDTRAIL_SHARED:-}" ]]; then
  root="$CREDTRAIL_SHARED"
  [[ "$root" == /* ]] || root="$project/$root"
elif [[ -d "$project/../shared" ]]; then
  root="$project/../shared"
else
  root="$project/target/shared"
fi
mkdir -p "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0
how=fetched
[[ -z "$from" ]] || how=copied

content_sha() {
  case "$1" in
    *.gz) gzip -dc "$1" | sha256sum | cut -c1-64 ;;
    *) sha256sum "$1" | cut -c1-64 ;;
  esac
}

# listing DIR PATH...: the sha256sum line of every file under the PATHs of DIR, sorted by path.
listing() {
  (cd "$1" && shift && find "$@" -type f | LC_ALL=C sort | xargs -r sha256sum)
}

tree_sha() {
  listing "$@" | sha256sum | cut -c1-64
}

download() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL "$1" -o "$2"
  else
    wget -q -O "$2" "$1"
  fi
}

# upstream_tree REPO COMMIT: the directory of the repository's files at COMMIT, downloaded once.
upstream_tree() {
  local dir="$tmp/${1//\//_}-$2"
  if [[ ! -d "$dir" ]]; then
    download "https://codeload.github.com/$1/tar.gz/$2" "$dir.tgz"
    mkdir "$dir"
    tar -xzf "$dir.tgz" -C "$dir" --strip-components=1
    rm "$dir.tgz"
  fi
  echo "$dir"
}

while IFS=$'\t' read -r -u 3 local kind repo commit upstream sha licence; do
  [[ -z "$local" || "$local" == \#* ]] && continue
  case "$kind" in
    zip | cloudtrail | vendored | tree) ;;
    *) echo "manifest.tsv: $local: unknown kind '$kind'" >&2 && exit 2 ;;
  esac
  out="$root/$local"
  new="$tmp/new/$(basename "$local")"
  rm -rf "$tmp/new" && mkdir "$tmp/new"
  if [[ "$kind" == tree ]]; then
    # shellcheck disable=SC2086 # the upstream paths are a space-separated list
    if [[ -d "$out" && "$(tree_sha "$out" $upstream 2>/dev/null)" == "$sha" ]]; then
      echo "ok (present)  $local"
      continue
    fi
    if [[ -n "$from" ]]; then src="$from/$local"; else src="$(upstream_tree "$repo" "$commit")"; fi
    mkdir "$new"
    if [[ -f "$here/$local.sha256" ]]; then
      # A subset: only the files the list names.
      (cd "$src" && cut -c67- "$here/$local.sha256" | tar --ignore-failed-read -cf - -T -) |
        tar -xf - -C "$new"
    else
      # shellcheck disable=SC2086
      (cd "$src" && tar --ignore-failed-read -cf - $upstream) | tar -xf - -C "$new"
    fi
    chmod -R u+w "$new"
    # shellcheck disable=SC2086
    got="$(tree_sha "$new" $upstream)"
  else
    if [[ -f "$out" && "$(content_sha "$out")" == "$sha" ]]; then
      echo "ok (present)  $local"
      continue
    fi
    if [[ "$kind" == vendored ]]; then
      case "${upstream%% *}" in
        *.gz) gzip -dc "$project/${upstream%% *}" > "$new" ;;
        *) cp "$project/${upstream%% *}" "$new" ;;
      esac
    elif [[ -n "$from" ]]; then
      cp "$from/$local" "$new"
      chmod u+w "$new"
    elif [[ "$kind" == zip ]]; then
      download "https://raw.githubusercontent.com/$repo/$commit/$upstream" "$tmp/d.zip"
      rm -rf "$tmp/x" && mkdir "$tmp/x" && unzip -q "$tmp/d.zip" -d "$tmp/x"
      member="$(find "$tmp/x" -type f -name '*.json' | head -1)"
      case "$new" in
        *.gz) gzip -9nc "$member" > "$new" ;;
        *) cp "$member" "$new" ;;
      esac
    else
      python3 - "$(upstream_tree "$repo" "$commit")" "$new" <<'PY'
import glob, json, sys
records = []
for f in sorted(glob.glob(sys.argv[1] + "/CloudTrail/*.json")):
    records.extend(json.load(open(f))["Records"])
records.sort(key=lambda r: r["eventTime"])
with open(sys.argv[2], "w") as out:
    for r in records:
        out.write(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n")
PY
    fi
    got="$(content_sha "$new")"
  fi
  if [[ "$got" == "$sha" ]]; then
    mkdir -p "$(dirname "$out")"
    rm -rf "$out" && mv "$new" "$out"
    echo "ok ($how)  $local"
  else
    echo "MISMATCH      $local: sha256 $got, manifest $sha; not installed" >&2
    if [[ -f "$here/$local.sha256" ]]; then
      (cd "$new" && sha256sum -c --quiet "$here/$local.sha256" >&2) || true
    fi
    status=1
  fi
done 3<"$here/manifest.tsv"
exit $status

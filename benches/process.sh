#!/usr/bin/env bash
# Process-layer figures for issue 3, on the release binary:
#   1. peak resident memory of the runner while an agent prints 1 GB (GNU time's
#      "Maximum resident set size"), and how long that run takes;
#   2. how long after a task's timeout (2 s) the runner moves on: the run's wall time and
#      the task's duration_ms, each minus the 2 s;
#   3. how long after SIGINT the runner exits, the agent being a plain `sleep 300.<pid>`.
# Usage: benches/process.sh   (needs GNU time: apt-get install -y time)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/borg-batch
gnu_time=/usr/bin/time
if ! "$gnu_time" -v true >/dev/null 2>&1; then
  echo "GNU time is missing: apt-get install -y time" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

now_ms() { date +%s%3N; }

# A one-task plan whose generic agent runs the shell script $2.
plan() {
  local name=$1 script=$2 extra=${3:-}
  cat > "$name.yaml" <<EOF
name: $name
timeout: 5m
$extra
agent: {kind: generic, command: /bin/sh, args: ["-c", $(printf '%s' "$script" | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()))')]}
instances: [{name: $name, role: developer}]
tasks: [{id: t, instance: $name, prompt: go}]
EOF
}

# 1. Peak memory while printing 1 GB: 80-byte lines on stdout.
plan flood "yes 'agent output line, the kind a verbose coding agent prints while it works.....' | head -c 1073741824"
start=$(now_ms)
"$gnu_time" -v -o time.txt "$bin" flood.yaml >/dev/null 2>flood.err
flood_ms=$(( $(now_ms) - start ))
rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' time.txt)
log_bytes=$(stat -c %s runs/flood/latest/logs/t.1.log)

# 2. Moving on after a timeout: `sleep 300` with a 2 s timeout (grace 10 s, unused:
#    sleep ends on SIGTERM).
plan timeout "sleep 300" "grace: 10s"
sed -i 's/prompt: go}/prompt: go, timeout: 2s}/' timeout.yaml
start=$(now_ms)
"$bin" timeout.yaml >/dev/null 2>timeout.err || true
timeout_wall_ms=$(( $(now_ms) - start ))
task_ms=$(python3 -c 'import json; print(json.load(open("runs/timeout/latest/report.json"))["tasks"][0]["duration_ms"])')

# 3. Exiting after SIGINT: the agent marks that it started, then sleeps.
mark=300.$(printf '%07d' $$)
plan sigint "touch $work/started; sleep $mark"
"$bin" sigint.yaml >/dev/null 2>sigint.err &
runner=$!
for _ in $(seq 1 400); do [ -e "$work/started" ] && break; sleep 0.05; done
sleep 0.2
start=$(now_ms)
kill -INT "$runner"
status=0
wait "$runner" || status=$?
sigint_ms=$(( $(now_ms) - start ))
sleep 0.5
left=$(pgrep -fc "sleep $mark" || true)

echo "borg-batch process figures (release build, $(nproc) cores)"
awk -v kb="$rss_kb" -v ms="$flood_ms" -v kept="$log_bytes" 'BEGIN {
  printf "  1 GB of agent output: peak RSS %d KiB (%.1f MiB); run took %.1f s; log kept %d bytes\n", kb, kb / 1024, ms / 1000, kept }'
echo "  after a 2 s timeout the runner moved on: run wall time - 2 s = $(( timeout_wall_ms - 2000 )) ms;" \
  "task duration_ms - 2000 = $(( task_ms - 2000 )) ms"
echo "  after SIGINT the runner exited in $sigint_ms ms (exit $status); agent processes left: $left"

#!/usr/bin/env bash
# The figures of issue 14, borg-batch against its anchors, side by side, on the release
# binary. Each round runs borg-batch and then its anchor (interleaved, so a load change on
# this shared machine hits both); each figure is printed as a ratio with min/median/max
# over the rounds, next to the absolute medians.
#
# Usage: benches/compare.sh [FIGURE...]      FIGURE: noop create tasks validate big many
#   FILES=100000 MB=860 RUNS=3 TASKS=1000 PLAN_TASKS=10000 BIG_MB=30 SMALL=200000
#   BENCH_DIR=target/bench  (trees are built once there and reused; target/ is gitignored)
# Quick run while developing: FILES=10000 MB=86 RUNS=3 SMALL=20000 benches/compare.sh
# Needs: git, python3, GNU time (apt-get install -y time).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
FILES=${FILES:-100000} MB=${MB:-860} RUNS=${RUNS:-3} TASKS=${TASKS:-1000}
PLAN_TASKS=${PLAN_TASKS:-10000} BIG_MB=${BIG_MB:-30} SMALL=${SMALL:-200000}
BENCH_DIR=$(mkdir -p "${BENCH_DIR:-$root/target/bench}" && cd "${BENCH_DIR:-$root/target/bench}" && pwd)
figures=${*:-noop create tasks validate big many}

[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$root/target/release/borg-batch
/usr/bin/time -f %M true 2>/dev/null >/dev/null || { echo "GNU time is missing: apt-get install -y time" >&2; exit 2; }

tree=$BENCH_DIR/tree-$FILES-$MB
if [ ! -e "$tree.done" ]; then
  echo "building $tree ($FILES files, $MB MB) ..." >&2
  rm -rf "$tree" "$tree.git"
  python3 "$root/benches/make_tree.py" "$tree" "$FILES" "$MB"
  git --git-dir="$tree.git" --work-tree="$tree" init -q
  git --git-dir="$tree.git" --work-tree="$tree" add -A
  git --git-dir="$tree.git" --work-tree="$tree" -c user.name=b -c user.email=b@b commit -qm tree
  touch "$tree.done"
fi
work=$BENCH_DIR/work
rm -rf "$work"
mkdir -p "$work"
results=$work/results.txt
: > "$results"

# measure NAME CMD...: one run; appends "NAME seconds max_rss_kib" to the results.
measure() {
  local name=$1
  shift
  local start end
  start=$(date +%s%N)
  /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null 2>"$work/$name.err" || {
    echo "$name failed: $* (see $work/$name.err)" >&2
    tail -5 "$work/$name.err" >&2
    exit 1
  }
  end=$(date +%s%N)
  echo "$name $(( (end - start) / 1000 ))e-6 $(tail -1 "$work/rss")" >> "$results"
}

plan_header() { # NAME
  cat <<EOF
name: $1
workspaces: $work/ws-$1
timeout: 10m
agent: {kind: generic, command: /bin/sh, args: ["-c", "eval \"\$BENCH_AGENT\""]}
EOF
}

# 1 + 2. A no-op task on an unchanged workspace (two snapshots, cached), and its memory,
# against `git status --porcelain` with a warm index.
fig_noop() {
  { plan_header noop; echo "instances: [{name: dev, role: developer, template: $tree}]"
    echo "tasks: [{id: t, instance: dev, prompt: go}]"; } > "$work/noop.yaml"
  BENCH_AGENT=true "$bin" "$work/noop.yaml" >/dev/null 2>&1 # creates the workspace
  sleep 2.5 # let the racy-git window of the first snapshot pass, as between two tasks
  BENCH_AGENT=true "$bin" "$work/noop.yaml" >/dev/null 2>&1 # leaves a settled cache
  local git=(git --git-dir="$tree.git" --work-tree="$tree" status --porcelain)
  "${git[@]}" >/dev/null
  for _ in $(seq "$RUNS"); do
    BENCH_AGENT=true measure noop "$bin" "$work/noop.yaml"
    measure git-status "${git[@]}"
  done
}

# 3. Creating the workspace from the template (the first task, --fresh), against `cp -a`;
# and what the content store holds once two instances share the template.
fig_create() {
  { plan_header create; echo "instances: [{name: a, role: developer, template: $tree}, {name: b, role: developer, template: $tree}]"
    echo "tasks: [{id: t, instance: a, prompt: go}]"; } > "$work/create.yaml"
  for _ in $(seq "$RUNS"); do
    BENCH_AGENT=true measure create "$bin" --fresh "$work/create.yaml"
    rm -rf "$work/cp"
    sync
    measure cp-a cp -a "$tree" "$work/cp"
    rm -rf "$work/cp"
  done
  BENCH_AGENT=true "$bin" "$work/create.yaml" --only t >/dev/null 2>&1
  sed -i 's/instance: a,/instance: b,/' "$work/create.yaml"
  BENCH_AGENT=true "$bin" "$work/create.yaml" >/dev/null 2>&1
  echo "store-kib $(du -sk --exclude=project-files "$work/ws-create" | cut -f1) 0" >> "$results"
  echo "tree-kib $(du -sk "$tree" | cut -f1) 0" >> "$results"
}

# 4. 1,000 no-op tasks on two instances, -j2, against xargs -P2.
fig_tasks() {
  { plan_header tasks; echo "instances: [{name: a, role: developer}, {name: b, role: developer}]"
    echo "tasks:"
    for i in $(seq "$TASKS"); do echo "  - {id: t$i, instance: $([ $((i % 2)) = 0 ] && echo a || echo b), prompt: go}"; done
  } > "$work/tasks.yaml"
  BENCH_AGENT=true "$bin" -j2 "$work/tasks.yaml" >/dev/null 2>&1
  for _ in $(seq "$RUNS"); do
    BENCH_AGENT=true measure tasks "$bin" -j2 "$work/tasks.yaml"
    measure xargs sh -c "seq $TASKS | xargs -P2 -n1 true"
  done
}

# 5. Validating a plan of PLAN_TASKS tasks and of twice as many (each needs the one before).
fig_validate() {
  local n
  for n in "$PLAN_TASKS" $((PLAN_TASKS * 2)); do
    { plan_header "v$n"; echo "instances: [{name: a, role: developer}, {name: b, role: developer}]"
      echo "tasks:"
      for i in $(seq "$n"); do
        if [ "$i" = 1 ]; then echo "  - {id: t$i, instance: a, prompt: go}"
        else echo "  - {id: t$i, instance: $([ $((i % 2)) = 0 ] && echo a || echo b), prompt: go, needs: [t$((i - 1))]}"; fi
      done; } > "$work/v$n.yaml"
  done
  for _ in $(seq "$RUNS"); do
    measure validate "$bin" validate "$work/v$PLAN_TASKS.yaml"
    measure validate2x "$bin" validate "$work/v$((PLAN_TASKS * 2)).yaml"
  done
}

# 6. One BIG_MB text file modified (a line appended).
fig_big() {
  python3 "$root/benches/make_tree.py" --big "$work/big-template" "$BIG_MB"
  { plan_header big; echo "instances: [{name: dev, role: developer, template: $work/big-template}]"
    echo "tasks: [{id: t, instance: dev, prompt: go}]"; } > "$work/big.yaml"
  for _ in $(seq "$RUNS"); do
    BENCH_AGENT='echo one more line >> big.txt' measure big "$bin" --fresh "$work/big.yaml"
  done
}

# 7. SMALL small files changed: the agent adds them (one line each).
fig_many() {
  { plan_header many; echo "instances: [{name: dev, role: developer}]"
    echo "tasks: [{id: t, instance: dev, prompt: go}]"; } > "$work/many.yaml"
  for _ in $(seq "$RUNS"); do
    BENCH_AGENT="python3 -c 'import os
for i in range($SMALL):
    d = \"d%04d\" % (i // 20)
    if i % 20 == 0: os.mkdir(d)
    open(\"%s/f%d.txt\" % (d, i), \"w\").write(\"line %d\\n\" % i)'" measure many "$bin" --fresh "$work/many.yaml"
    echo "many-html-kib $(du -k "$work/runs/many/latest/report.html" 2>/dev/null | cut -f1 || echo 0) 0" >> "$results"
  done
}

cd "$work"
for f in $figures; do "fig_$f"; done

python3 - "$results" "$FILES" "$SMALL" "$PLAN_TASKS" "$TASKS" "$MB" "$BIG_MB" <<'EOF'
import statistics, sys
path, files, small, plan_tasks, tasks, mb, big_mb = sys.argv[1], *map(float, sys.argv[2:])
runs = {}
for line in open(path):
    name, secs, kib = line.split()
    runs.setdefault(name, []).append((float(secs), float(kib)))
def col(name, i): return [r[i] for r in runs.get(name, [])]
def fmt(xs, unit=""):
    if not xs: return "-"
    return f"{min(xs):.2f} / {statistics.median(xs):.2f} / {max(xs):.2f}{unit}"
def ratio(a, b, k=1.0):
    return [x / (k * y) for x, y in zip(a, b)]
def med(xs, unit="s"): return f"{statistics.median(xs):.3f} {unit}" if xs else "-"
print(f"issue-14 figures: {int(files)} files / {mb:g} MB tree, {len(col('noop', 0)) or len(col('tasks', 0))} rounds; ratio min / median / max")
rows = []
if "noop" in runs:
    rows.append(("no-op task, per snapshot / git status", fmt(ratio(col("noop", 0), col("git-status", 0), 2.0), "x"),
                 f"borg {med(col('noop', 0))}, git status {med(col('git-status', 0))}", "<= 1.0"))
    rows.append(("runner memory per file (no-op task)", fmt([k * 1024 / files for k in col("noop", 1)], " B"),
                 f"max RSS {med([k / 1024 for k in col('noop', 1)], 'MiB')}", "<= 300 B"))
if "create" in runs:
    rows.append(("creating the workspace / cp -a", fmt(ratio(col("create", 0), col("cp-a", 0)), "x"),
                 f"borg {med(col('create', 0))}, cp -a {med(col('cp-a', 0))}", "<= 1.5"))
    st, tr = col("store-kib", 0), col("tree-kib", 0)
    if st and tr:
        rows.append(("runner state of 2 instances sharing the template / tree", f"{st[0] / tr[0]:.2f}x",
                     f"{st[0] / 1024:.0f} MiB for a {tr[0] / 1024:.0f} MiB tree", "stored once"))
if "tasks" in runs:
    rows.append((f"{int(tasks)} no-op tasks -j2 / xargs -P2", fmt(ratio(col("tasks", 0), col("xargs", 0)), "x"),
                 f"borg {med(col('tasks', 0))}, xargs {med(col('xargs', 0))}", "<= 2"))
if "validate" in runs:
    rows.append((f"validating {int(plan_tasks)} tasks", fmt(col("validate", 0), " s"), "", "<= 1 s"))
    rows.append((f"validating {int(2 * plan_tasks)} / {int(plan_tasks)} tasks", fmt(ratio(col("validate2x", 0), col("validate", 0)), "x"), "", "<= 2.2"))
if "big" in runs:
    rows.append((f"one {big_mb:g} MB text file modified: max RSS", fmt([k / 1024 for k in col("big", 1)], " MiB"),
                 f"wall {med(col('big', 0))}", "<= 100 MiB"))
if "many" in runs:
    rows.append((f"{int(small)} small files changed: max RSS per file", fmt([k * 1024 / small for k in col("many", 1)], " B"),
                 f"wall {med(col('many', 0))}, report.html {med([k / 1024 for k in col('many-html-kib', 0)], 'MiB')}", "<= 300 B"))
w = max(len(r[0]) for r in rows)
for name, fig, abs_, goal in rows:
    print(f"  {name:<{w}}  {fig:<28} goal {goal:<10} {abs_}")
EOF

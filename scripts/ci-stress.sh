#!/usr/bin/env bash
# Runs CI (.ci/run: gofmt, vet and every test) in fresh clones of this
# repository, several times in a row, and reports which runs failed and in
# which tests. A test that fails here by chance is a bug to fix at its
# cause, not a run to repeat.
#
#   scripts/ci-stress.sh [-n RUNS] [--hog] [--logs DIR]
#   make ci-stress CI_STRESS_ARGS='-n 10 --hog'
#
#   -n RUNS     how many runs, one after the other (default 5)
#   --hog       keep two CPU-bound busy loops running beside the runs, as a
#               loaded machine would
#   --logs DIR  where each run's output is kept (default .ci-stress/<time>)
#
# Each run clones the committed HEAD (uncommitted changes are not tested)
# into a temporary directory and runs `CI=true bash .ci/run` there. The
# clones and the busy loops are removed on exit, also on Ctrl-C. The
# exit status is 0 only if every run passed.
set -euo pipefail

runs=5
hog=false
logs=
while [ $# -gt 0 ]; do
  case $1 in
    -n) runs=${2:?-n needs a number}; shift 2 ;;
    --hog) hog=true; shift ;;
    --logs) logs=${2:?--logs needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ci-stress: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $runs in
  ''|*[!0-9]*|0) echo "ci-stress: -n: $runs is not a positive number" >&2; exit 2 ;;
esac

repo=$(git rev-parse --show-toplevel)
rev=$(git -C "$repo" rev-parse --short HEAD)
logs=${logs:-$repo/.ci-stress/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$logs"
work=$(mktemp -d "${TMPDIR:-/tmp}/ci-stress.XXXXXX")
hogs=()

cleanup() {
  for pid in "${hogs[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if $hog; then
  for _ in 1 2; do
    bash -c 'while :; do :; done' &
    hogs+=($!)
  done
fi

echo "ci-stress: $runs run(s) of .ci/run at $rev$($hog && echo ', beside two busy loops'); logs in $logs"
passed=0
failures=()
for i in $(seq 1 "$runs"); do
  clone=$work/run-$i
  log=$logs/run-$i.log
  git clone -q "$repo" "$clone"
  start=$SECONDS
  if (cd "$clone" && CI=true bash .ci/run) >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i: pass ($((SECONDS - start))s)"
  else
    # The failed tests, deepest first in go test's order; else the last
    # lines (a lint or build failure, a timeout's panic).
    failed=$(sed -n 's/^ *--- FAIL: \([^ ]*\).*/\1/p' "$log" | sort -u | tr '\n' ' ')
    if [ -z "$failed" ]; then
      failed="no --- FAIL line; the log ends: $(tail -n 3 "$log" | tr '\n' ' ')"
    fi
    failures+=("run $i: $failed")
    echo "run $i: FAIL ($((SECONDS - start))s): $failed"
  fi
  rm -rf "$clone"
done

echo "ci-stress: $passed of $runs runs passed$($hog && echo ' (with --hog)')"
for f in "${failures[@]}"; do
  echo "  $f"
done
[ "$passed" -eq "$runs" ]

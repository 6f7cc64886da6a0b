#!/usr/bin/env bash
# Runs the real-engine tests of this folder one after another against one
# regcache binary and adds up their results (CTest runs each script as its own
# test; this is for a run by hand).
# Usage: run-all.sh PATH/TO/regcache [TEST…]     TEST: docker containerd podman skopeo docker-auth podman-auth offline-mirror
# Needs root and the engines (.ci/install-engines).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
regcache=${1:?usage: run-all.sh PATH/TO/regcache [TEST…]}
shift
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=(docker containerd podman skopeo docker-auth podman-auth offline-mirror)

out=$(mktemp /tmp/regcache-engines-run-all.XXXXXX)
trap 'rm -f "$out"' EXIT

passed=0 failed=0 skipped=0 started=$SECONDS
for t in "${tests[@]}"; do
  echo "# === $t"
  t0=$SECONDS
  bash "$here/$t.sh" "$regcache" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  summary=$(tail -n 1 "$out")
  if [ "$rc" -eq 77 ]; then
    skipped=$((skipped + 1))
  elif [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    # A script that exits non-zero with no failed check still failed.
    [ "$rc" -ne 0 ] && [ "${BASH_REMATCH[2]}" -eq 0 ] && failed=$((failed + 1))
  else
    echo "not ok - $t.sh ended without its summary line (exit code $rc)"
    failed=$((failed + 1))
  fi
  echo "# $t: exit code $rc, $((SECONDS - t0)) s"
done
echo "# all engine tests: $((SECONDS - started)) s"
[ "$skipped" -gt 0 ] && echo "# $skipped test script(s) skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

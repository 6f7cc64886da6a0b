#!/usr/bin/env bash
# Runs every libFuzzer harness built in BUILD_DIR (default build/fuzz) for
# FUZZ_SECONDS each (default 60), starting from the seed corpus in
# tests/fuzz/corpus/<name>/. New inputs go to BUILD_DIR/fuzz-work/<name>/corpus
# (the seeds in the repo are never written); a crash leaves its input in
# BUILD_DIR/fuzz-work/<name>/artifacts/ and makes the script fail after all
# harnesses ran. Reproduce one with: BUILD_DIR/tests/fuzz/fuzz_<name> <file>.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build/fuzz}"
seconds="${FUZZ_SECONDS:-60}"

shopt -s nullglob
harnesses=("$build"/tests/fuzz/fuzz_*)
[ ${#harnesses[@]} -gt 0 ] || { echo "fuzz: no harnesses in $build/tests/fuzz (cmake --build --preset fuzz)" >&2; exit 1; }

failed=()
for exe in "${harnesses[@]}"; do
  [ -x "$exe" ] || continue
  name="${exe##*/fuzz_}"
  work="$build/fuzz-work/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  # Manifests and configs are documents; the other inputs are header-sized.
  case "$name" in manifest|config) max_len=65536 ;; *) max_len=4096 ;; esac
  seeds=()
  [ -d "$here/corpus/$name" ] && seeds+=("$here/corpus/$name")
  echo "fuzz: $name for ${seconds}s"
  if "$exe" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
       "$work/corpus" "${seeds[@]}" >"$work/log" 2>&1; then
    grep -E "^(stat::number_of_executed_units|Done)" "$work/log" | tr '\n' ' '; echo
  else
    echo "fuzz: $name FAILED (input in $work/artifacts/); the end of its log:"
    tail -n 40 "$work/log"
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#harnesses[@]} harnesses ran ${seconds}s each without a crash"

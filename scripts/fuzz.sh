#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and fuzzes each one for a
# bounded time.
#
#   scripts/fuzz.sh            30 seconds per target (the CI setting)
#   scripts/fuzz.sh 600        ten minutes per target
#   scripts/fuzz.sh 60 image   only the named targets
#
# Each target starts from its seed corpus (tests/fuzz/corpus/<target>/ and the
# fixtures listed in tests/fuzz/CMakeLists.txt); what it learns goes to a work
# corpus under build-fuzz/fuzz-out/<target>/corpus (kept between runs, never
# committed). A crash, leak, timeout or out-of-memory input is saved as
# build-fuzz/fuzz-out/crashers/<target>-crash-<sha1> (or leak-, timeout-,
# oom-), the remaining targets still run, and the script exits 1. To keep a
# crasher as a regression test, copy it into tests/fuzz/corpus/<target>/ with
# a name that says what it is: CTest replays every corpus file (fuzz.<target>).
#
# Environment: TS_FUZZ_BUILD names the build folder (default build-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
shift || true
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "fuzz.sh: SECONDS must be a positive whole number, not '$secs'" >&2
    exit 2
fi
dir=${TS_FUZZ_BUILD:-build-fuzz}
cmake -S . -B "$dir" -DTS_WERROR=ON -DCMAKE_BUILD_TYPE=Debug -DTS_FUZZ=ON \
    -DCMAKE_C_COMPILER=clang >/dev/null
# Every target tests/fuzz/CMakeLists.txt declares leaves a .seeds file at
# configure time: that list is the default.
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$dir"/tests/fuzz/fuzz_*.seeds; do
        t=${f##*/fuzz_}
        targets+=("${t%.seeds}")
    done
fi
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]/#/fuzz_}"

out=$dir/fuzz-out
mkdir -p "$out/crashers"
failed=()
for t in "${targets[@]}"; do
    bin=$dir/tests/fuzz/fuzz_$t
    mapfile -t seeds < "$dir/tests/fuzz/fuzz_$t.seeds"
    work=$out/$t/corpus
    mkdir -p "$work"
    echo "fuzz.sh: $t for ${secs}s"
    # detect_leaks: a leak in a parser is a finding like a crash (P11).
    if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$out/crashers/$t-" \
        "$work" "${seeds[@]}" > "$out/$t.log" 2>&1; then
        failed+=("$t")
        echo "fuzz.sh: $t FAILED; the log is $out/$t.log:" >&2
        grep -E "ERROR|SUMMARY|Test unit written|artifact" "$out/$t.log" | head -20 >&2 || true
    else
        grep -E "stat::number_of_executed_units|cov:" "$out/$t.log" | tail -2 || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (inputs under $out/crashers/)" >&2
    exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each, no findings"

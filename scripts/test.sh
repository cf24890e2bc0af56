#!/usr/bin/env bash
# Sets up, builds and runs every test: the format check, the whole suite on
# the release build (unit, integration against the real server, the browser
# test, hostile inputs, the independent-reference checks), the unit suite
# again under ASan + UBSan, and a bounded libFuzzer run of every fuzz target.
# Exit status 0 only when all of it passed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test --tools
scripts/check-format.sh

scripts/build.sh release
(cd build && ctest --output-on-failure --timeout 900)

scripts/build.sh asan
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    TS_SANITIZED=1 ctest --output-on-failure --timeout 1800 -L unit)

# 30 s per target; a finding fails the run and is saved under build-fuzz/.
scripts/fuzz.sh 30

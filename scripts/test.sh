#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build, the same suite under
# ASan + UBSan, the format check and the bounded fuzz run. Exit status 0 only
# when all of it passed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --test
scripts/check-format.sh

scripts/build.sh release
(cd build && ctest --output-on-failure --timeout 900)

scripts/build.sh asan
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    TS_SANITIZED=1 ctest --output-on-failure --timeout 1800 -L unit)

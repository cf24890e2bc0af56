#!/usr/bin/env bash
# Configures and builds one flavour of the tree.
#   scripts/build.sh            release build in build/
#   scripts/build.sh asan       ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
jobs=$(nproc)
case "$flavour" in
    release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DTS_SANITIZE=ON) ;;
    fuzz) dir=build-fuzz; flags=(-DCMAKE_BUILD_TYPE=Debug -DTS_FUZZ=ON -DCMAKE_C_COMPILER=clang) ;;
    *) echo "build.sh: unknown flavour '$flavour' (release, asan, fuzz)" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -DTS_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"

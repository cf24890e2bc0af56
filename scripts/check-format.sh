#!/usr/bin/env bash
# Fails when any C file under src/, tests/ or bench/ drifts from .clang-format.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'bench/*.c')
((${#files[@]})) || exit 0
if ! clang-format --dry-run --Werror "${files[@]}"; then
    echo "check-format: run 'clang-format -i' on the files above" >&2
    exit 1
fi
echo "check-format: ${#files[@]} files clean"

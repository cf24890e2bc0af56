#!/usr/bin/env bash
# The main job: sets up, builds, generates one image with the built-in model
# (out/red-heart.png), then starts the service on http://127.0.0.1:8080 and
# prints its URL. Ctrl-C stops the service; nothing it held survives it.
#
#   scripts/run.sh [serve options...]     e.g. scripts/run.sh --listen 127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build.sh release

mkdir -p out
# generate prints the name of the file it wrote (once).
./build/src/cli/togethershot generate "a red heart" --seed 1 -o out/red-heart.png

exec ./build/src/cli/togethershot serve --memory-only "$@"

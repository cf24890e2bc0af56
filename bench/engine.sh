#!/usr/bin/env bash
# bench/engine.sh - the engine benchmark: the built-in model (one native-size
# image) and a full-size SD 1.5 shaped checkpoint with random weights (text
# encoder, UNet at 512x512 batch 1 and 2, VAE decode, a 20-step image, a
# one-step image, peak memory), with achieved GFLOP/s. Prints figures; never
# passes or fails on time.
#
#   bench/engine.sh [BUILD_DIR]            (default: build)
#
# The checkpoint (about 2 GB, git-ignored) is written once to
# bench/work/sd15.safetensors by make_random_sd_ckpt.py, and the FLOPs come
# from sd_flops.py; both live in $TS_SD_TOOLS (default /work/shared/tools).
# Random weights give noise pictures, but the shapes, FLOPs and memory
# traffic are the real ones. The checkpoint has no tokenizer: the tiny test
# fixture's vocabulary stands in (token ids only feed the embedding lookup).
# Takes several minutes of every core. Wall times on a shared machine depend
# on what else runs: the CPU seconds and GFLOP per CPU-second are printed too.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build}
BIN=$BUILD/src/cli/togethershot
TOOLS=${TS_SD_TOOLS:-/work/shared/tools}
CKPT=bench/work/sd15.safetensors
[ -x "$BIN" ] || { echo "build first: $BIN is missing" >&2; exit 1; }

echo "== machine"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket)' || true
echo "vector units: $(grep -o -w -E 'avx2|fma|avx512f|avx512_bf16|amx_tile' /proc/cpuinfo \
    | sort -u | tr '\n' ' ')"

echo "== built-in model"
"$BIN" bench --steps 20 || echo "(the built-in model did not load; see above)"

echo "== SD 1.5 shape, random weights"
mkdir -p bench/work
if [ ! -f "$CKPT" ]; then
    /usr/bin/python3 "$TOOLS/make_random_sd_ckpt.py" sd15 "$CKPT"
fi
FLOPS=$(/usr/bin/python3 "$TOOLS/sd_flops.py")
# The figures of the first SD 1.5 section: "NAME ... 803.3 GFLOP".
gflop() { echo "$FLOPS" | grep -m1 "$1" | sed -E 's/.* ([0-9.]+) GFLOP .*/\1/'; }
G_UNET=$(gflop 'UNet 64x64 latent (512x512), batch 1')
G_UNET2=$(gflop 'UNet 64x64 latent (512x512), batch 2')
G_CLIP=$(gflop 'CLIP ViT-L/14 text encoder')
G_VAE=$(gflop 'VAE decoder 64x64 -> 512x512')
# On a slow or shared machine a whole 20-step 512x512 image takes far too
# long: by default the whole-image times are sums of the measured parts
# (TS_BENCH_FULL=1 runs the images for real).
EST=--estimate
[ "${TS_BENCH_FULL:-0}" = 1 ] && EST=
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" bench --model "$CKPT" --tokenizer tests/fixtures/engine/tiny-sd1/tokenizer \
    --size 512x512 --steps "${TS_BENCH_STEPS:-20}" --reps "${TS_BENCH_REPS:-1}" $EST \
    --gflop-clip "$G_CLIP" --gflop-unet "$G_UNET" --gflop-unet2 "$G_UNET2" --gflop-vae "$G_VAE"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

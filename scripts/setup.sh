#!/usr/bin/env bash
# Installs everything TogetherShot needs to build, run and test on Debian 12.
# Idempotent: packages already present are left alone, npm packages are
# installed from the lock file only when node_modules is missing or stale.
#
#   scripts/setup.sh            build + run dependencies
#   scripts/setup.sh --test     also what the test suite needs (browser,
#                               redis, clang fuzzers, npm test clients)
#   scripts/setup.sh --tools    also what training and fixture tools need
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
want_tools=0
for arg in "$@"; do
    case "$arg" in
        --test) want_test=1 ;;
        --tools) want_tools=1 ;;
        *) echo "setup.sh: unknown option '$arg' (use --test or --tools)" >&2; exit 2 ;;
    esac
done

pkgs=(
    build-essential cmake pkg-config git ca-certificates
    libmicrohttpd-dev libgnutls28-dev libsodium-dev libdnnl-dev
    libpng-dev libjpeg62-turbo-dev libwebp-dev libheif-dev libexif-dev
    libjansson-dev libhiredis-dev zlib1g-dev
)
# Node.js may come from elsewhere (for example a newer nodejs that bundles
# npm and conflicts with Debian's npm package): only ask for Debian's pair
# when there is no npm at all.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
if ((want_test)); then
    pkgs+=(redis-server chromium clang libclang-rt-14-dev clang-format
           gnutls-bin wrk imagemagick python3-minimal)
fi
if ((want_tools)); then
    pkgs+=(python3-torch python3-numpy python3-pil python3-fonttools
           fonts-noto-color-emoji unicode-cldr-core openclipart-png
           libheif-examples libopenblas0-openmp)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm: the face models (always) and the test clients (with --test).
if [[ -f package-lock.json ]]; then
    stamp=node_modules/.setup-stamp
    if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
        npm ci --no-audit --no-fund --loglevel=error
        touch "$stamp"
    fi
fi

# Face models for the portrait-rights check (POLICY.md P13): copy only the
# three face-api networks the check uses out of node_modules, so nothing is
# downloaded at run time. The folder is git-ignored.
face_src=node_modules/@vladmandic/face-api/model
face_dst=models/face
if [[ -d $face_src ]]; then
    mkdir -p "$face_dst"
    for m in ssd_mobilenetv1_model face_landmark_68_model face_recognition_model; do
        for f in "$m-weights_manifest.json" "$m.bin"; do
            if [[ ! -f $face_dst/$f || $face_src/$f -nt $face_dst/$f ]]; then
                cp "$face_src/$f" "$face_dst/$f"
            fi
        done
    done
fi

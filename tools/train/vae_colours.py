#!/usr/bin/python3
"""Does a trained VAE keep the colour of the colour-named shapes?

Encodes and decodes (latent mean, no sampling) every picture whose name pairs
a colour word with a simple shape, and names the dominant hue of the original
and of the round trip with the same measure as the product's colour check
(tests/unit/engine/colour_test.c): saturation-weighted votes into 36 hue bins,
the best window of three bins, nearest of six named hues.

Usage (from the repository root):
  /usr/bin/python3 tools/train/vae_colours.py tools/train/work/vae2/final.pt
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.use_fast_blas()

import numpy as np  # noqa: E402
import torch  # noqa: E402

NAMED = {"red": 5, "orange": 33, "yellow": 48, "green": 90, "blue": 210, "purple": 290}
SHAPES = ("heart", "circle", "square", "apple", "book", "star", "diamond")


def dominant_hue(img):
    """uint8 (H, W, 3) -> degrees, or -1 when under 2% of pixels are coloured."""
    px = img.reshape(-1, 3).astype(np.float64) / 255
    mx, mn = px.max(1), px.min(1)
    c = mx - mn
    s = np.where(mx > 0, c / np.maximum(mx, 1e-12), 0)
    keep = (s >= 0.3) & (mx >= 0.25)
    if keep.sum() < len(px) // 50:
        return -1.0
    r, g, b = px[keep].T
    c, s, m = c[keep], s[keep], mx[keep]
    h = np.where(m == r, np.mod((g - b) / c, 6), np.where(m == g, (b - r) / c + 2, (r - g) / c + 4))
    h = h * 60
    k = (h // 10).astype(int) % 36
    bins = np.bincount(k, weights=s, minlength=36)
    win = [bins[(i - 1) % 36] + bins[i] + bins[(i + 1) % 36] for i in range(36)]
    best = int(np.argmax(win))
    sel = np.isin(k, [(best - 1) % 36, best, (best + 1) % 36])
    rad = np.radians(h[sel])
    return math.degrees(math.atan2((s[sel] * np.sin(rad)).sum(), (s[sel] * np.cos(rad)).sum())) % 360


def hue_word(h):
    if h < 0:
        return "none"
    return min(NAMED, key=lambda w: min(abs(h - NAMED[w]) % 360, 360 - abs(h - NAMED[w]) % 360))


def main():
    common.setup(0)
    from tools.sdref.vae import AutoencoderKL
    images, records = common.load_dataset(sys.argv[2] if len(sys.argv) > 2
                                          else "tools/data/work/emoji64")
    st = torch.load(sys.argv[1])
    from train_vae import VAE_CONFIG
    vae = AutoencoderKL(st.get("config", VAE_CONFIG))  # ckpt.pt files carry no config
    vae.load_state_dict(st["model"])
    vae.eval()
    sel = [i for i, r in enumerate(records)
           if any(w in NAMED for w in r["name"].split()) and any(s in r["name"] for s in SHAPES)]
    with torch.no_grad():
        mean, _ = vae.encode(common.to_tensor(images[sel]))
        y = vae.decode(mean)
    out = ((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    kept = 0
    for k, i in enumerate(sel):
        a, b = dominant_hue(images[i]), dominant_hue(out[k])
        same = hue_word(a) == hue_word(b)
        kept += same
        print("%-26s %-7s %5.0f -> %-7s %5.0f%s" % (records[i]["name"], hue_word(a), a,
                                                   hue_word(b), b, "" if same else "  (changed)"))
    print("round trip keeps the colour of %d of %d pictures" % (kept, len(sel)))


if __name__ == "__main__":
    main()

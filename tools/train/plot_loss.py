#!/usr/bin/python3
"""Draws the training loss curves into one PNG with PIL (no matplotlib here).

Each CSV (step, seconds, loss, ...) becomes one panel: the raw loss in light
grey and a moving average in colour, log-scaled on y. When a run was resumed
after an interruption, the rows of the repeated steps are replaced by the
later ones.

Usage:
  /usr/bin/python3 tools/train/plot_loss.py --out models/togethershot-mini/loss.png \
      "VAE:tools/train/work/vae/loss.csv" "UNet + text encoder:tools/train/work/unet/loss.csv"
"""
import argparse
import csv
import math

from PIL import Image, ImageDraw


def read(path):
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            rows[int(r["step"])] = float(r["loss"])
    steps = sorted(rows)
    return steps, [rows[s] for s in steps]


def smooth(v, k):
    out, acc = [], []
    for x in v:
        acc.append(x)
        if len(acc) > k:
            acc.pop(0)
        out.append(sum(acc) / len(acc))
    return out


def panel(d, box, title, steps, vals):
    x0, y0, x1, y1 = box
    d.rectangle(box, outline=(0, 0, 0))
    d.text((x0 + 6, y0 - 14), title, fill=(0, 0, 0))
    if not steps:
        return
    lv = [math.log10(max(v, 1e-6)) for v in vals]
    lo, hi = min(lv), max(lv)
    hi = hi if hi > lo else lo + 1
    smax = max(steps)

    def pt(s, v):
        return (x0 + (x1 - x0) * s / smax, y1 - (y1 - y0) * (v - lo) / (hi - lo))
    d.line([pt(s, v) for s, v in zip(steps, lv)], fill=(200, 200, 200))
    sm = [math.log10(max(v, 1e-6)) for v in smooth(vals, max(5, len(vals) // 50))]
    d.line([pt(s, v) for s, v in zip(steps, sm)], fill=(200, 30, 30), width=2)
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        d.text((x0 - 44, pt(0, v)[1] - 6), "%.3g" % (10 ** v), fill=(0, 0, 0))
    d.text((x1 - 60, y1 + 4), "step %d" % smax, fill=(0, 0, 0))
    d.text((x0, y1 + 4), "0", fill=(0, 0, 0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("runs", nargs="+", help="TITLE:CSV")
    args = ap.parse_args()
    w, h = 640, 240
    img = Image.new("RGB", (w, h * len(args.runs)), "white")
    d = ImageDraw.Draw(img)
    for i, spec in enumerate(args.runs):
        title, path = spec.split(":", 1)
        steps, vals = read(path)
        panel(d, (56, i * h + 24, w - 16, i * h + h - 24),
              title + " (loss, log scale; red: moving average)", steps, vals)
    img.save(args.out)


if __name__ == "__main__":
    main()

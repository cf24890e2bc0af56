#!/usr/bin/python3
"""Builds the training set of the built-in model from pictures Debian ships.

Sources (all openly licensed, all read from the local Debian install):
  * fonts-noto-color-emoji: the CBDT/CBLC colour bitmap strike of
    NotoColorEmoji.ttf (SIL Open Font License 1.1).
  * unicode-cldr-core: English emoji annotations (annotations/en.xml and
    annotationsDerived/en.xml; Unicode License v3 / Unicode terms of use).

Each glyph is mapped to its Unicode sequence (cmap for single code points,
GSUB ligatures for sequences), named from CLDR (the type="tts" name plus the
keywords), composited on white and resized to the training size. Glyphs that
CLDR does not name, and skin-tone variants of people (a few thousand pictures
that differ only in skin colour), are left out. A colour word measured from
the glyph's pixels is added to the captions where the name carries none, so
"yellow star" and "orange circle" are phrases the model sees.

Output: one compressed .npz with uint8 images (N, S, S, 3), and a JSON list of
records {seq, name, keywords, colour, captions}. Deterministic: no randomness.

Usage:
  /usr/bin/python3 tools/data/prepare.py --size 64 --out tools/data/work/emoji64
"""
import argparse
import io
import json
import os
import sys
import xml.etree.ElementTree as ET

import numpy as np
from fontTools.ttLib import TTFont
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import colour  # noqa: E402

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
CLDR = [
    "/usr/share/unicode/cldr/common/annotations/en.xml",
    "/usr/share/unicode/cldr/common/annotationsDerived/en.xml",
]
# Unicode 15 emoji that the font draws but CLDR 41 does not name yet; names
# as in later CLDR releases.
EXTRA_NAMES = {
    (0x1FA77,): ("pink heart", ["heart", "pink", "cute", "like", "love"]),
    (0x1FA75,): ("light blue heart", ["heart", "light blue", "cyan", "teal"]),
    (0x1FA76,): ("grey heart", ["heart", "grey", "gray", "silver"]),
}
SKIN_TONES = set(range(0x1F3FB, 0x1F400))
VS16 = 0xFE0F
COLOUR_WORDS = ["red", "orange", "yellow", "green", "blue", "purple", "brown", "black",
                "white", "pink", "grey", "gray", "gold", "silver"]


def load_cldr():
    """Returns {sequence without VS16: (tts name, [keywords])}."""
    names, keywords = {}, {}
    for path in CLDR:
        root = ET.parse(path).getroot()
        for a in root.iter("annotation"):
            cp = a.get("cp")
            if cp is None or a.text is None:
                continue
            key = tuple(ord(c) for c in cp if ord(c) != VS16)
            if a.get("type") == "tts":
                names.setdefault(key, a.text.strip())
            else:
                kws = [k.strip() for k in a.text.split("|") if k.strip()]
                keywords.setdefault(key, kws)
    out = {k: (v, keywords.get(k, [])) for k, v in names.items()}
    for k, v in EXTRA_NAMES.items():
        out.setdefault(k, v)
    return out


def glyph_sequences(font):
    """Maps glyph name -> tuple of code points, from cmap and GSUB type-4 ligatures."""
    seq = {}
    for cp, g in font.getBestCmap().items():
        if g not in seq or len(seq[g]) > 1:
            seq.setdefault(g, (cp,))
    gsub = font["GSUB"].table
    # Ligatures may build on other ligatures, so resolve until nothing changes.
    ligs = []
    for lookup in gsub.LookupList.Lookup:
        if lookup.LookupType != 4:
            continue
        for st in lookup.SubTable:
            for first, lst in st.ligatures.items():
                for lig in lst:
                    ligs.append(([first] + list(lig.Component), lig.LigGlyph))
    for _ in range(4):
        changed = False
        for comps, out in ligs:
            if out in seq or not all(c in seq for c in comps):
                continue
            seq[out] = tuple(cp for c in comps for cp in seq[c])
            changed = True
        if not changed:
            break
    return seq


def dominant_colour(rgba):
    """A colour word when one colour clearly dominates the opaque pixels, else None."""
    px = rgba[..., :3][rgba[..., 3] > 128]
    return colour.dominant(px)


def render(png_bytes, size, margin):
    """Composites the glyph on white and fits it in size x size with a margin."""
    im = Image.open(io.BytesIO(png_bytes)).convert("RGBA")
    rgba = np.asarray(im)
    inner = size - 2 * margin
    w, h = im.size
    scale = inner / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Resize premultiplied so transparent fringes do not darken edges.
    pm = rgba.astype(np.float32)
    pm[..., :3] *= pm[..., 3:4] / 255.0
    chans = [Image.fromarray(pm[..., c]).resize((nw, nh), Image.LANCZOS) for c in range(4)]
    pm = np.stack([np.asarray(c) for c in chans], -1).clip(0, 255)
    alpha = pm[..., 3:4] / 255.0
    rgb = pm[..., :3] + 255.0 * (1.0 - alpha)
    canvas = np.full((size, size, 3), 255.0, np.float32)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = rgb
    return canvas.round().clip(0, 255).astype(np.uint8), rgba


def article(phrase):
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def captions_for(name, keywords, col):
    caps = [name, article(name), "an emoji of " + article(name)]
    if keywords:
        kw = [k for k in keywords if k != name][:5]
        if kw:
            caps.append(name + ", " + ", ".join(kw))
    has_colour = any(w in name.split() for w in COLOUR_WORDS)
    if col and not has_colour:
        caps += [col + " " + name, article(col + " " + name)]
    return caps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--margin", type=int, default=4)
    ap.add_argument("--out", default="tools/data/work/emoji64")
    args = ap.parse_args()

    font = TTFont(FONT)
    strike = font["CBDT"].strikeData[0]
    seqs = glyph_sequences(font)
    cldr = load_cldr()

    images, records = [], []
    skipped = {"no_sequence": 0, "no_name": 0, "skin_tone": 0, "no_bitmap": 0}
    for gname in sorted(strike.keys(), key=lambda g: seqs.get(g, (0x10FFFF + 1,))):
        if gname not in seqs:
            skipped["no_sequence"] += 1
            continue
        seq = tuple(c for c in seqs[gname] if c != VS16)
        if any(c in SKIN_TONES for c in seq):
            skipped["skin_tone"] += 1
            continue
        if seq not in cldr:
            skipped["no_name"] += 1
            continue
        bm = strike[gname]
        bm.ensureDecompiled()
        data = getattr(bm, "imageData", None)
        if not data:
            skipped["no_bitmap"] += 1
            continue
        name, keywords = cldr[seq]
        img, rgba = render(data, args.size, args.margin)
        col = dominant_colour(rgba)
        images.append(img)
        records.append({
            "seq": " ".join("%04X" % c for c in seq),
            "name": name,
            "keywords": keywords,
            "colour": col,
            "captions": captions_for(name, keywords, col),
        })

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    np.savez_compressed(args.out + ".npz", images=np.stack(images))
    with open(args.out + ".json", "w") as f:
        json.dump({"sources": {
            "NotoColorEmoji.ttf (fonts-noto-color-emoji)": "SIL Open Font License 1.1",
            "CLDR annotations en (unicode-cldr-core)": "Unicode License",
        }, "size": args.size, "count": len(records), "skipped": skipped,
            "records": records}, f, ensure_ascii=False, indent=0)
    ncol = sum(1 for r in records if r["colour"])
    print("images %d (with a measured colour word: %d), skipped %s" % (len(records), ncol, skipped))


if __name__ == "__main__":
    sys.exit(main())

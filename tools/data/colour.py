"""Names the dominant colour of a picture; shared by the data preparation
(to add colour words to captions) and by the evaluation (hue accuracy).

The thresholds were set by looking at the Noto emoji palette: red apple is
hue 15 deg at full saturation, orange circle 36 deg, yellow circle 47 deg
(so orange and yellow part at 41 deg), the brown shapes 15 deg at saturation
0.54 and value 0.72, the black shapes a dark grey (value 0.26).

The data set of the committed model was captioned while the orange/yellow
boundary was still at 45 deg; only pictures whose dominant hue lies between
41 and 45 deg were named differently (orange instead of yellow).
"""
import numpy as np

NAMES = ["red", "orange", "brown", "yellow", "green", "blue", "purple", "pink",
         "black", "white", "grey"]


def rgb_to_hsv(px):
    """px: (N, 3) floats in [0, 1] -> h in degrees, s, v."""
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    mx, mn = px.max(1), px.min(1)
    d = mx - mn
    s = np.where(mx > 0, d / np.maximum(mx, 1e-8), 0.0)
    dd = np.maximum(d, 1e-8)
    h = np.where(mx == r, ((g - b) / dd) % 6.0,
                 np.where(mx == g, (b - r) / dd + 2.0, (r - g) / dd + 4.0)) * 60.0
    h = np.where(d > 0, h, 0.0)
    return h, s, mx


def classify(px):
    """px: (N, 3) uint8 or floats in [0, 1]. Returns {name: fraction} over px."""
    px = np.asarray(px, np.float32)
    if px.max() > 1.0:
        px = px / 255.0
    h, s, v = rgb_to_hsv(px)
    dark = v < 0.30
    light = (s < 0.12) & (v > 0.85)
    grey = (s < 0.12) & ~dark & ~light
    sat = (s >= 0.25) & ~dark
    warm = (h >= 8) & (h < 45)
    brown = sat & warm & (v < 0.82) & (s < 0.78)
    bins = {
        "red": sat & ((h < 20) | (h >= 340)) & ~brown,
        "orange": sat & (h >= 20) & (h < 41) & ~brown,
        "brown": brown,
        "yellow": sat & (h >= 41) & (h < 68),
        "green": sat & (h >= 68) & (h < 170),
        "blue": sat & (h >= 170) & (h < 255),
        "purple": sat & (h >= 255) & (h < 300),
        "pink": sat & (h >= 300) & (h < 340),
        "black": dark,
        "white": light,
        "grey": grey,
    }
    n = max(1, len(px))
    return {k: float(m.sum()) / n for k, m in bins.items()}


def dominant(px, share=0.55):
    """The colour name holding at least `share` of px, else None."""
    if len(px) < 50:
        return None
    frac = classify(px)
    best = max(frac, key=frac.get)
    return best if frac[best] >= share else None


def foreground(img_rgb, thresh=40):
    """Pixels of an (H, W, 3) uint8 image on a white background that are not
    background: farther than `thresh` from white in the max channel distance."""
    img = np.asarray(img_rgb).reshape(-1, 3).astype(np.int32)
    mask = (255 - img).max(1) > thresh
    return img[mask]

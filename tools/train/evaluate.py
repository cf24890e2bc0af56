#!/usr/bin/python3
"""Samples an exported model folder and measures how often the colour is right.

Loads the folder with tools/sdref's diffusers reader (so the stored files
themselves are what is tested), tokenises with sdref's CLIPTokenizer, and
samples with sdref's Euler sampler under the folder's scheduler config, with
classifier-free guidance, at the native 64x64.

Hue accuracy: the 24 prompts of the product's colour check
(tests/unit/engine/colour_test.c), each naming a colour and an object, with
the same measure (vae_colours.py: saturation-weighted dominant hue, nearest
of six named hues); the named colour must come out. Writes samples.png (a
grid in prompt order, each tile captioned) and prints and saves the accuracy
as JSON.

Usage (from the repository root):
  /usr/bin/python3 tools/train/evaluate.py --model models/togethershot-mini \
      --grid models/togethershot-mini/samples.png --seeds 2
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

common.use_fast_blas()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

PROMPTS = [
    "a red heart", "a blue heart", "a green heart", "a yellow heart", "a purple heart",
    "an orange heart", "a red apple", "a green apple", "a red circle", "a blue circle",
    "an orange circle", "a yellow circle", "a green circle", "a purple circle", "a red square",
    "a blue square", "an orange square", "a yellow square", "a green square", "a purple square",
    "a green book", "a blue book", "an orange book", "a yellow star",
]


def expected_colour(prompt):
    return prompt.split()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/togethershot-mini")
    ap.add_argument("--steps", type=int, default=0, help="0: the model's default")
    ap.add_argument("--guidance", type=float, default=0.0, help="0: the model's default")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--grid", default="")
    ap.add_argument("--json", default="")
    ap.add_argument("--limit", type=int, default=0, help="only the first N prompts (smoke test)")
    args = ap.parse_args()
    common.setup(0)
    import vae_colours
    import fastops
    fastops.install()
    from tools.sdref import diffusers_io, schedulers
    from tools.sdref.tokenizer import CLIPTokenizer

    pipe = diffusers_io.load_pipeline(args.model)
    with open(os.path.join(args.model, "togethershot.json")) as f:
        meta = json.load(f)
    steps = args.steps or meta["default_steps"]
    guidance = args.guidance or meta["default_guidance"]
    tok = CLIPTokenizer.from_dir(pipe["tokenizer_dir"])
    te, unet, vae = pipe["text_encoder"], pipe["unet"], pipe["vae"]
    scale = vae.config["scaling_factor"]
    sched = schedulers.euler_schedule(steps, pipe["scheduler_config"])

    def encode(texts):
        with torch.no_grad():
            return te(torch.tensor([tok(t) for t in texts]))["last_hidden_state"]

    names = PROMPTS[:args.limit] if args.limit else PROMPTS
    prompts = list(names)
    tiles, hits, results = [], 0, []
    with torch.no_grad():
        cond = encode(prompts)
        uncond = encode([""] * len(prompts))
        for seed in range(args.seeds):
            g = torch.Generator().manual_seed(1000 + seed)
            noise = torch.randn(len(prompts), 4, 16, 16, generator=g)
            model = schedulers.cfg_model(unet, cond, uncond, guidance)
            z = schedulers.sample_euler(model, noise, sched)
            img = vae.decode(z / scale).clamp(-1, 1)
            img = ((img + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
            for p, im in zip(names, img):
                hue = vae_colours.dominant_hue(im)
                got = vae_colours.hue_word(hue)
                ok = got == expected_colour(p)
                hits += ok
                results.append({"prompt": p, "seed": seed, "hue": round(hue, 1), "got": got,
                                "ok": bool(ok)})
                tiles.append((p, im, ok))
    acc = hits / len(results)
    print("hue accuracy %.1f%% (%d/%d), steps %d, guidance %.1f" %
          (100 * acc, hits, len(results), steps, guidance))
    for r in results:
        if not r["ok"]:
            print("  miss: %s (seed %d) -> %s (hue %.0f)" % (r["prompt"], r["seed"], r["got"],
                                                          r["hue"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"accuracy": acc, "steps": steps, "guidance": guidance,
                       "results": results}, f, indent=1)
    if args.grid:
        cols, cell, lab = 8, 96, 14
        rows = (len(tiles) + cols - 1) // cols
        grid = Image.new("RGB", (cols * cell, rows * (cell + lab)), "white")
        d = ImageDraw.Draw(grid)
        for i, (p, im, ok) in enumerate(tiles):
            x, y = (i % cols) * cell, (i // cols) * (cell + lab)
            grid.paste(Image.fromarray(im).resize((cell - 8, cell - 8), Image.NEAREST), (x + 4, y))
            d.text((x + 4, y + cell - 6), p, fill=(0, 0, 0))
        grid.save(args.grid)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Trains the AutoencoderKL of the built-in model (sdref classes, diffusers names).

Loss: L1 + L2 on pixels, + an edge term (L1 between horizontal and vertical
finite differences, so outlines stay sharp) with a low-frequency colour term
(L1 between 8x8 average-pooled pictures), + a small KL toward N(0, 1) that
keeps the latent smooth for the diffusion model. The first part of the run
uses random 32x32 crops (4x cheaper per picture); the rest uses whole 64x64
pictures so the group norms and the mid-block attention see the statistics
they will meet at inference. Augmentation: horizontal flip and shifts of up
to 4 pixels (white fill), and with --hue-aug a random rotation of every
colour around the grey axis (hue turns, brightness and saturation stay):
the emoji set has few green (63) and purple (30) pictures next to 239 blue
ones, and a first run decoded green as orange-brown.

At the end the latent scaling factor is measured: 1 / std of sampled latents
over the whole data set, so the UNet sees unit-variance latents.

Resumable: rerunning the same command continues from the last checkpoint.
Usage (from the repository root):
  /usr/bin/python3 tools/train/train_vae.py --steps 900 --crop-steps 500
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

common.use_fast_blas()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "block_out_channels": [32, 64, 128],
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    # Few groups on purpose: with 32 groups over 32 channels every group norm
    # is a per-channel instance norm, which removes a flat area's colour (a
    # first run decoded every colour as brown-grey). 4 groups keep 8 channels
    # per group at the first level, whose ratios carry the colour.
    "layers_per_block": 1, "norm_num_groups": 4, "sample_size": 64, "act_fn": "silu",
    "scaling_factor": 1.0,
}


def augment(x, gen, crop):
    """x (B, 3, 64, 64) in [-1, 1] -> flipped, shifted, optionally cropped."""
    B, _, S, _ = x.shape
    flip = torch.rand(B, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    pad = 4
    xp = F.pad(x, (pad, pad, pad, pad), value=1.0)
    out_size = crop if crop else S
    lim = S + 2 * pad - out_size
    if crop:
        # Crops are taken from the picture's inner area, where the glyph is.
        lo, hi = pad + 4, pad + S - 4 - crop
        ys = torch.randint(lo, hi + 1, (B,), generator=gen)
        xs = torch.randint(lo, hi + 1, (B,), generator=gen)
    else:
        ys = torch.randint(0, lim + 1, (B,), generator=gen)
        xs = torch.randint(0, lim + 1, (B,), generator=gen)
    return torch.stack([xp[i, :, ys[i]:ys[i] + out_size, xs[i]:xs[i] + out_size]
                        for i in range(B)])


def hue_rotate(x, gen, share):
    """Turns the hue of a random share of pictures x (B, 3, H, W) in [-1, 1]
    by a random angle: a rotation about the (1, 1, 1) grey axis in RGB, so
    grey, white and black pixels stay as they are. Clamped back to [-1, 1]."""
    B = x.shape[0]
    pick = torch.rand(B, generator=gen) < share
    ang = torch.rand(B, generator=gen) * 2 * math.pi
    c, s = torch.cos(ang), torch.sin(ang)
    k = 1.0 / 3.0
    r3 = math.sqrt(1.0 / 3.0)
    # Rodrigues' rotation about the unit axis (1, 1, 1) / sqrt(3).
    m = torch.empty(B, 3, 3)
    for i in range(3):
        for j in range(3):
            base = c + (1 - c) * k if i == j else (1 - c) * k
            sign = 0.0 if i == j else (1.0 if (j - i) % 3 == 2 else -1.0)
            m[:, i, j] = base + sign * r3 * s
    eye = torch.eye(3).expand(B, 3, 3)
    m = torch.where(pick[:, None, None], m, eye)
    g = (x + 1) / 2
    y = torch.einsum("bij,bjhw->bihw", m, g)
    return (y * 2 - 1).clamp(-1, 1)


def losses(vae, x, gen):
    mean, logvar = vae.encode(x)
    std = torch.exp(0.5 * logvar)
    z = mean + std * torch.randn(mean.shape, generator=gen)
    y = vae.decode(z)
    l1 = (y - x).abs().mean()
    l2 = ((y - x) ** 2).mean()
    edge = ((y[..., 1:, :] - y[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])).abs().mean() + \
        ((y[..., 1:] - y[..., :-1]) - (x[..., 1:] - x[..., :-1])).abs().mean()
    kl = 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2, 3)).mean()
    # Colour at low frequency: L1 between 8x8 average-pooled pictures. And
    # chroma (each pixel minus its grey level) counted twice more: a first
    # run learnt brightness long before hue and decoded every colour as one.
    low = (F.avg_pool2d(y, 8) - F.avg_pool2d(x, 8)).abs().mean()
    chroma = ((y - y.mean(1, keepdim=True)) - (x - x.mean(1, keepdim=True))).abs().mean()
    return l1, l2, edge + low + CHROMA[0] * chroma, kl


CHROMA = [4.0]
NOISE = [1.0]


def decoder_losses(vae, base, data, idx, gen, crop):
    """Decoder-only: decode latents sampled from the base run's stored
    (mean, std) of pictures idx; crop: latent crop side (pixels / 4) or 0."""
    mean, std = (t[idx] for t in base["latents"])
    z = mean + NOISE[0] * std * torch.randn(mean.shape, generator=gen)
    x = data[idx]
    if crop:
        c = crop // 4
        B = len(idx)
        ys = torch.randint(1, 16 - c, (B,), generator=gen)
        xs = torch.randint(1, 16 - c, (B,), generator=gen)
        z = torch.stack([z[i, :, ys[i]:ys[i] + c, xs[i]:xs[i] + c] for i in range(B)])
        x = torch.stack([x[i, :, 4 * ys[i]:4 * (ys[i] + c), 4 * xs[i]:4 * (xs[i] + c)]
                         for i in range(B)])
    y = vae.decode(z.contiguous(memory_format=torch.channels_last))
    l1 = (y - x).abs().mean()
    l2 = ((y - x) ** 2).mean()
    edge = ((y[..., 1:, :] - y[..., :-1, :]) - (x[..., 1:, :] - x[..., :-1, :])).abs().mean() + \
        ((y[..., 1:] - y[..., :-1]) - (x[..., 1:] - x[..., :-1])).abs().mean()
    low = (F.avg_pool2d(y, 8) - F.avg_pool2d(x, 8)).abs().mean()
    chroma = ((y - y.mean(1, keepdim=True)) - (x - x.mean(1, keepdim=True))).abs().mean()
    return l1, l2, edge + low + CHROMA[0] * chroma, torch.zeros(())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="tools/data/work/emoji64")
    ap.add_argument("--work", default="tools/train/work/vae")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--crop-steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--full-batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--kl-weight", type=float, default=2e-6)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--init", default="",
                    help="final.pt of an earlier run to start from (whole VAE trained)")
    ap.add_argument("--hue-aug", type=float, default=0.0,
                    help="share of pictures whose hue is turned by a random angle")
    ap.add_argument("--until", default="", help="HH:MM UTC: end the run early at that time")
    ap.add_argument("--decoder-only", default="",
                    help="final.pt of a finished run: keep its encoder (and so its latents "
                         "and scaling factor) and train only the decoder further")
    ap.add_argument("--chroma", type=float, default=4.0,
                    help="weight of the chroma term (pixel minus its grey level)")
    ap.add_argument("--latent-noise", type=float, default=1.0,
                    help="decoder-only runs decode mean + this * std * noise: the encoder put "
                         "part of the hue in its noisiest channel, where full posterior noise "
                         "hides green from brown")
    args = ap.parse_args()
    CHROMA[0] = args.chroma
    until = common.parse_until(args.until)
    NOISE[0] = args.latent_noise

    common.setup(args.seed)
    import fastops
    fastops.install()
    from tools.sdref.vae import AutoencoderKL
    from tools.sdref import layers as L

    os.makedirs(args.work, exist_ok=True)
    images, records = common.load_dataset(args.data)
    data = common.to_tensor(images)
    N = len(data)
    # Decoder-only runs draw pictures inversely to how common their colour is:
    # green (63 pictures) and purple (30) are rare next to blue (239), and the
    # decoder learnt them last.
    counts = {}
    for r in records:
        counts[r["colour"]] = counts.get(r["colour"], 0) + 1
    draw = torch.tensor([1.0 / counts[r["colour"]] for r in records]) ** 0.75

    vae = AutoencoderKL(VAE_CONFIG)
    base = None
    if args.init:
        vae.load_state_dict(torch.load(args.init)["model"])
    if args.decoder_only:
        base = torch.load(args.decoder_only)
        vae.load_state_dict(base["model"])
        for p in list(vae.encoder.parameters()) + list(vae.quant_conv.parameters()):
            p.requires_grad_(False)
    trainable = [p for p in vae.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    ck = os.path.join(args.work, "ckpt.pt")
    if os.path.exists(ck):
        st = torch.load(ck)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        step = st["step"]
        print("resumed at step", step, flush=True)
    print("vae params %d" % L.count_params(vae), flush=True)
    vae = vae.to(memory_format=torch.channels_last)
    log = common.CsvLog(os.path.join(args.work, "loss.csv"),
                        ["step", "seconds", "loss", "l1", "l2", "edge", "kl", "lr"])

    t0 = time.time()
    start = step
    while step < args.steps:
        crop = 32 if step < args.crop_steps else 0
        bs = args.batch if crop else args.full_batch
        if args.decoder_only:
            idx = torch.multinomial(draw, bs, replacement=True, generator=gen)
        else:
            idx = torch.randint(0, N, (bs,), generator=gen)
        x = augment(data[idx], gen, crop)
        if args.hue_aug > 0:
            x = hue_rotate(x, gen, args.hue_aug)
        x = x.contiguous(memory_format=torch.channels_last)
        # Linear warm-up, then cosine decay to a tenth.
        warm = min(1.0, (step + 1) / 50)
        cos = 0.55 + 0.45 * torch.cos(torch.tensor(step / args.steps * 3.14159265)).item()
        lr = args.lr * warm * cos
        for g in opt.param_groups:
            g["lr"] = lr
        if base is not None:
            l1, l2, edge, kl = decoder_losses(vae, base, data, idx, gen, crop)
        else:
            l1, l2, edge, kl = losses(vae, x, gen)
        loss = l1 + l2 + 0.5 * edge + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        log.row(step, round(time.time() - t0, 2), loss.item(), l1.item(), l2.item(), edge.item(),
                kl.item(), lr)
        if step % 10 == 0:
            print("step %d %.2fs/step loss %.4f l1 %.4f kl %.1f" %
                  (step, (time.time() - t0) / max(1, step - start),
                   loss.item(), l1.item(), kl.item()), flush=True)
        stop = until is not None and time.time() >= until
        if step % args.ckpt_every == 0 or step == args.steps or stop:
            common.save_ckpt(ck, model=vae.state_dict(), opt=opt.state_dict(), gen=gen.get_state(),
                             step=step)
        if stop:
            print("ending at step %d (time limit)" % step, flush=True)
            break

    if base is not None:
        # The encoder, its latents and the scaling factor are those of the base run.
        base["model"] = {k: v.contiguous() for k, v in vae.state_dict().items()}
        base["decoder_steps"] = step
        torch.save(base, os.path.join(args.work, "final.pt"))
        print("done: decoder trained %d steps on the base encoder" % step, flush=True)
        return
    # Scaling factor: 1 / std of sampled latents over the data set. The
    # latents (mean and std) of every picture are kept for the UNet training.
    vae.eval()
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, N, 64):
            x = data[i:i + 64].contiguous(memory_format=torch.channels_last)
            mean, logvar = vae.encode(x)
            means.append(mean.contiguous())
            stds.append(torch.exp(0.5 * logvar).contiguous())
        mean_all, std_all = torch.cat(means), torch.cat(stds)
        z = mean_all + std_all * torch.randn(mean_all.shape, generator=gen)
        rec = vae.decode(mean_all[:64])
        full_l1 = (rec - data[:64]).abs().mean().item()
    scale = 1.0 / z.std().item()
    cfg = dict(VAE_CONFIG)
    cfg["scaling_factor"] = round(scale, 5)
    torch.save({"config": cfg, "model": {k: v.contiguous() for k, v in vae.state_dict().items()},
                "latent_mean": z.mean().item(), "latent_std": z.std().item(),
                "full_l1": full_l1, "latents": (mean_all, std_all)},
               os.path.join(args.work, "final.pt"))
    with open(os.path.join(args.work, "final.json"), "w") as f:
        json.dump({"scaling_factor": cfg["scaling_factor"], "latent_mean": z.mean().item(),
                   "latent_std": z.std().item(), "l1_on_64_pictures": full_l1, "steps": step}, f,
                  indent=1)
    print("done: scaling_factor %.5f, latent mean %.3f std %.3f, l1 %.4f" %
          (scale, z.mean().item(), z.std().item(), full_l1), flush=True)
    # A side-by-side strip of originals and reconstructions for a quick look.
    from PIL import Image
    import numpy as np
    a = ((torch.cat([data[:16], rec[:16].clamp(-1, 1)], 2) + 1) * 127.5).round().byte()
    strip = a.permute(2, 0, 3, 1).reshape(128, -1, 3).numpy()
    Image.fromarray(np.ascontiguousarray(strip)).save(os.path.join(args.work, "recon.png"))


if __name__ == "__main__":
    main()

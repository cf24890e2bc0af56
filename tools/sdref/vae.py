"""AutoencoderKL (the SD VAE) with diffusers parameter names.

Encoder: conv_in, per level layers_per_block ResnetBlock2D (no time
embedding, GroupNorm eps 1e-6) and, except at the last level, a stride-2 3x3
conv after zero-padding right/bottom by one; mid block resnet, single-head
spatial self-attention, resnet; GroupNorm, SiLU, conv_out to 2*latent
channels; quant_conv (1x1) -> (mean, logvar).
Decoder: post_quant_conv (1x1), conv_in, mid block, per level (reversed)
layers_per_block+1 resnets and, except at the last level, nearest 2x + conv;
GroupNorm, SiLU, conv_out.

The scaling factor (0.18215 for SD) is NOT applied here: the pipeline divides
latents by it before decode and multiplies after encode.
"""
import torch
import torch.nn.functional as F
from torch import nn

from . import layers as L
from .unet import ResnetBlock2D, Downsample2D, Upsample2D, ToOut, attention

DEFAULTS = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2, "norm_num_groups": 32, "sample_size": 512,
    "scaling_factor": 0.18215, "act_fn": "silu",
}

EPS = 1e-6

# old (diffusers < 0.14) attention names -> new names
OLD_ATTN_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


class VAEAttention(nn.Module):
    """One-head self-attention over H*W positions with a residual.

    h = group_norm(x) -> (B, HW, C); softmax(q k^T / sqrt(C)) v; to_out.0; + x.
    """

    def __init__(self, ch, groups):
        super().__init__()
        self.group_norm = L.GroupNorm(groups, ch, EPS)
        self.to_q = L.Linear(ch, ch)
        self.to_k = L.Linear(ch, ch)
        self.to_v = L.Linear(ch, ch)
        self.to_out = ToOut(ch, ch)

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.group_norm(x).reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
        a = attention(self.to_q(h), self.to_k(h), self.to_v(h), 1)
        a = self.to_out[0](a).transpose(1, 2).reshape(B, C, H, W)
        return a + x


class MidBlock(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, None, groups, EPS),
                                      ResnetBlock2D(ch, ch, None, groups, EPS)])
        self.attentions = nn.ModuleList([VAEAttention(ch, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class EncoderBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, add_down):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, None, groups, EPS) for i in range(n)])
        if add_down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, padding=0)])
        self.has_down = add_down

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.downsamplers[0](x) if self.has_down else x


class DecoderBlock(nn.Module):
    def __init__(self, cin, cout, n, groups, add_up):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, None, groups, EPS) for i in range(n)])
        if add_up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])
        self.has_up = add_up

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.has_up else x


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, g, n = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        self.conv_in = L.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, t in enumerate(c["down_block_types"]):
            if t != "DownEncoderBlock2D":
                raise ValueError(f"unsupported VAE down block {t}")
            cin, out = out, boc[i]
            self.down_blocks.append(EncoderBlock(cin, out, n, g, i < len(boc) - 1))
        self.mid_block = MidBlock(boc[-1], g)
        self.conv_norm_out = L.GroupNorm(g, boc[-1], EPS)
        self.conv_out = L.Conv2d(boc[-1], 2 * c["latent_channels"], 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, g, n = c["block_out_channels"], c["norm_num_groups"], c["layers_per_block"]
        rboc = boc[::-1]
        self.conv_in = L.Conv2d(c["latent_channels"], rboc[0], 3, padding=1)
        self.mid_block = MidBlock(rboc[0], g)
        self.up_blocks = nn.ModuleList()
        out = rboc[0]
        for i, t in enumerate(c["up_block_types"]):
            if t != "UpDecoderBlock2D":
                raise ValueError(f"unsupported VAE up block {t}")
            cin, out = out, rboc[i]
            self.up_blocks.append(DecoderBlock(cin, out, n + 1, g, i < len(boc) - 1))
        self.conv_norm_out = L.GroupNorm(g, boc[0], EPS)
        self.conv_out = L.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def forward(self, z):
        x = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = dict(DEFAULTS)
        c.update({k: v for k, v in config.items() if not k.startswith("_")})
        self.config = c
        lc = c["latent_channels"]
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)
        self.quant_conv = L.Conv2d(2 * lc, 2 * lc, 1)
        self.post_quant_conv = L.Conv2d(lc, lc, 1)

    def encode(self, x):
        """x (B, 3, H, W) in [-1, 1] -> (mean, logvar), each (B, latent, H/f, W/f).

        logvar is clamped to [-30, 20] as in the original."""
        m = self.quant_conv(self.encoder(x))
        mean, logvar = m.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        """z (B, latent, h, w), already divided by scaling_factor -> (B, 3, h*f, w*f)."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x):
        return self.decode(self.encode(x)[0])

    @staticmethod
    def rename_old(sd):
        """Map pre-0.14 diffusers attention names (query/key/value/proj_attn) to the new ones.

        Old files may also hold these as 1x1 conv weights (C, C, 1, 1); they are
        flattened to linear (C, C)."""
        out = {}
        for k, v in sd.items():
            parts = k.split(".")
            if ".attentions." in k and len(parts) >= 2 and parts[-2] in OLD_ATTN_NAMES:
                k = ".".join(parts[:-2] + [OLD_ATTN_NAMES[parts[-2]], parts[-1]])
            if ".attentions." in k and k.endswith(".weight") and v.dim() == 4 and \
                    "group_norm" not in k:
                v = v[:, :, 0, 0]
            out[k] = v
        return out

    def load_state_dict_checked(self, sd):
        L.load_state(self, self.rename_old(sd))

"""UNet2DConditionModel of Stable Diffusion 1.x / 2.x with diffusers parameter names.

Built from a diffusers unet/config.json dict. Supported block types:
CrossAttnDownBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D,
CrossAttnUpBlock2D. Not supported (rejected): class/addition embeddings,
SDXL-style transformer depth lists per block other than 1, dual cross attention.

Head count: diffusers' config key "attention_head_dim" historically holds the
NUMBER OF HEADS per block (SD 1.x: 8 -> head dim 40/80/160; SD 2.x: [5,10,20,20]
-> head dim 64). "num_attention_heads", when present and not null, wins. A
block with C channels and n heads uses head dim C // n.

Shapes: sample (B, C_in, H, W), timestep scalar or (B,), encoder_hidden_states
(B, T, D_ctx); returns (B, C_out, H, W).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import layers as L

DEFAULTS = {
    "in_channels": 4, "out_channels": 4, "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2, "attention_head_dim": 8, "num_attention_heads": None,
    "cross_attention_dim": 1280, "norm_num_groups": 32, "norm_eps": 1e-5,
    "use_linear_projection": False, "flip_sin_to_cos": True, "freq_shift": 0,
    "transformer_layers_per_block": 1, "upcast_attention": False,
    "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu",
    "sample_size": 64,
}


def timestep_embedding(t, dim, flip_sin_to_cos, shift, max_period=10000):
    """Sinusoidal embedding of timesteps t (B,) -> (B, dim) in float32.

    freq_i = exp(-ln(max_period) * i / (half - shift)), i < half = dim // 2;
    emb = [sin(t f), cos(t f)], or [cos, sin] with flip_sin_to_cos.
    """
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - shift)
    freqs = torch.exp(exponent)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = L.Linear(cin, dim)
        self.linear_2 = L.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    """GroupNorm-SiLU-conv3x3 twice, time embedding added between, 1x1 skip if C changes.

    h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb))[:, :, None, None]
    out = shortcut(x) + conv2(silu(norm2(h)))
    """

    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = L.GroupNorm(groups, cin, eps)
        self.conv1 = L.Conv2d(cin, cout, 3, padding=1)
        if temb is not None:
            self.time_emb_proj = L.Linear(temb, cout)
        self.norm2 = L.GroupNorm(groups, cout, eps)
        self.conv2 = L.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = L.Conv2d(cin, cout, 1)
        self.has_temb = temb is not None
        self.has_shortcut = cin != cout

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.has_temb and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.has_shortcut:
            x = self.conv_shortcut(x)
        return x + h


class ToOut(nn.ModuleList):
    """to_out.0 is the projection; to_out.1 (dropout) has no parameters."""

    def __init__(self, inner, dim, bias=True):
        super().__init__([L.Linear(inner, dim, bias=bias), nn.Dropout(0.0)])


def attention(q, k, v, heads):
    """Scaled dot-product attention. q (B, N, h*d), k/v (B, M, h*d) -> (B, N, h*d)."""
    B, N, C = q.shape
    M = k.shape[1]
    d = C // heads
    q = q.view(B, N, heads, d).transpose(1, 2)  # (B, h, N, d)
    k = k.view(B, M, heads, d).transpose(1, 2)
    v = v.view(B, M, heads, d).transpose(1, 2)
    w = torch.softmax((q @ k.transpose(-1, -2)) * (d ** -0.5), dim=-1)  # (B, h, N, M)
    return (w @ v).transpose(1, 2).reshape(B, N, C)


class Attention(nn.Module):
    """Multi-head attention, to_q/to_k/to_v without bias, to_out.0 with bias."""

    def __init__(self, dim, heads, dim_head, context_dim=None):
        super().__init__()
        inner = heads * dim_head
        cd = context_dim if context_dim is not None else dim
        self.heads = heads
        self.to_q = L.Linear(dim, inner, bias=False)
        self.to_k = L.Linear(cd, inner, bias=False)
        self.to_v = L.Linear(cd, inner, bias=False)
        self.to_out = ToOut(inner, dim)

    def forward(self, x, context=None):
        ctx = x if context is None else context
        a = attention(self.to_q(x), self.to_k(ctx), self.to_v(ctx), self.heads)
        return self.to_out[0](a)


class GEGLU(nn.Module):
    """proj: D -> 2F; out = a * gelu(g) with [a, g] = split(proj(x)) (a first)."""

    def __init__(self, dim, inner):
        super().__init__()
        self.proj = L.Linear(dim, inner * 2)

    def forward(self, x):
        a, g = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(g)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), L.Linear(inner, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class BasicTransformerBlock(nn.Module):
    """x += attn1(norm1 x); x += attn2(norm2 x, ctx); x += ff(norm3 x); LayerNorm eps 1e-5."""

    def __init__(self, dim, heads, dim_head, context_dim):
        super().__init__()
        self.norm1 = L.LayerNorm(dim, 1e-5)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = L.LayerNorm(dim, 1e-5)
        self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm3 = L.LayerNorm(dim, 1e-5)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class Transformer2DModel(nn.Module):
    """Spatial transformer over a feature map, with a residual around it.

    h = GroupNorm(x) (eps 1e-6, fixed in diffusers); proj_in (1x1 conv before
    flattening, or linear after it with use_linear_projection); blocks over the
    (B, H*W, inner) tokens; proj_out likewise; out = h + x.
    """

    def __init__(self, channels, heads, dim_head, context_dim, groups, use_linear, depth=1):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = L.GroupNorm(groups, channels, 1e-6)
        if use_linear:
            self.proj_in = L.Linear(channels, inner)
        else:
            self.proj_in = L.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)])
        if use_linear:
            self.proj_out = L.Linear(inner, channels)
        else:
            self.proj_out = L.Conv2d(inner, channels, 1)

    def forward(self, x, context):
        B, C, H, W = x.shape
        h = self.norm(x)
        if not self.use_linear:
            h = self.proj_in(h)
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, -1)  # (B, HW, C or inner)
        if self.use_linear:
            h = self.proj_in(h)
        for blk in self.transformer_blocks:
            h = blk(h, context)
        if self.use_linear:
            h = self.proj_out(h)
        h = h.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        if not self.use_linear:
            h = self.proj_out(h)
        return h + x


class Downsample2D(nn.Module):
    """3x3 conv with stride 2 (padding 1 in the UNet; the VAE pads right/bottom by 1)."""

    def __init__(self, ch, padding=1):
        super().__init__()
        self.padding = padding
        self.conv = L.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest-neighbour 2x (or to size) then a 3x3 conv."""

    def __init__(self, ch):
        super().__init__()
        self.conv = L.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, size=None):
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=size, mode="nearest")
        return self.conv(x)


class DownBlock(nn.Module):
    def __init__(self, cin, cout, temb, n, groups, eps, add_down, attn=None, pad=1):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, temb, groups, eps) for i in range(n)])
        if attn is not None:
            self.attentions = nn.ModuleList([attn(cout) for _ in range(n)])
        self.has_attn = attn is not None
        if add_down:
            self.downsamplers = nn.ModuleList([Downsample2D(cout, pad)])
        self.has_down = add_down

    def forward(self, x, temb, ctx):
        outs = []
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.has_attn:
                x = self.attentions[i](x, ctx)
            outs.append(x)
        if self.has_down:
            x = self.downsamplers[0](x)
            outs.append(x)
        return x, outs


class UpBlock(nn.Module):
    def __init__(self, cin, prev, cout, temb, n, groups, eps, add_up, attn=None):
        super().__init__()
        rs = []
        for i in range(n):
            skip = cin if i == n - 1 else cout
            rin = prev if i == 0 else cout
            rs.append(ResnetBlock2D(rin + skip, cout, temb, groups, eps))
        self.resnets = nn.ModuleList(rs)
        if attn is not None:
            self.attentions = nn.ModuleList([attn(cout) for _ in range(n)])
        self.has_attn = attn is not None
        if add_up:
            self.upsamplers = nn.ModuleList([Upsample2D(cout)])
        self.has_up = add_up

    def forward(self, x, skips, temb, ctx, size=None):
        # skips: the matching down-path outputs, consumed last-first
        skips = list(skips)
        for i, r in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = r(x, temb)
            if self.has_attn:
                x = self.attentions[i](x, ctx)
        if self.has_up:
            x = self.upsamplers[0](x, size)
        return x


class UNetMidBlock2DCrossAttn(nn.Module):
    def __init__(self, ch, temb, groups, eps, attn):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb, groups, eps),
                                      ResnetBlock2D(ch, ch, temb, groups, eps)])
        self.attentions = nn.ModuleList([attn(ch)])

    def forward(self, x, temb, ctx):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, ctx)
        return self.resnets[1](x, temb)


def _per_block(v, n, what):
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{what} has {len(v)} entries for {n} blocks")
        return list(v)
    return [v] * n


class UNet2DConditionModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = dict(DEFAULTS)
        c.update({k: v for k, v in config.items() if not k.startswith("_")})
        self.config = c
        for k in ("class_embed_type", "addition_embed_type", "encoder_hid_dim"):
            if c.get(k) is not None:
                raise ValueError(f"unsupported UNet option {k}={c[k]!r}")
        if c.get("dual_cross_attention") or c.get("only_cross_attention"):
            raise ValueError("dual/only cross attention is not supported")
        if c["mid_block_type"] != "UNetMidBlock2DCrossAttn":
            raise ValueError(f"unsupported mid block {c['mid_block_type']}")
        if c.get("resnet_time_scale_shift", "default") != "default":
            raise ValueError("only resnet_time_scale_shift=default is supported")
        boc = list(c["block_out_channels"])
        nb = len(boc)
        if len(c["down_block_types"]) != nb or len(c["up_block_types"]) != nb:
            raise ValueError("block type lists must match block_out_channels")
        heads = c["num_attention_heads"] if c.get("num_attention_heads") is not None \
            else c["attention_head_dim"]
        heads = _per_block(heads, nb, "attention heads")
        depth = _per_block(c["transformer_layers_per_block"], nb, "transformer_layers_per_block")
        if any(d != 1 for d in depth):
            raise ValueError("transformer_layers_per_block other than 1 is not supported")
        lpb = _per_block(c["layers_per_block"], nb, "layers_per_block")
        ctx = c["cross_attention_dim"]
        if isinstance(ctx, (list, tuple)):
            raise ValueError("per-block cross_attention_dim is not supported")
        g, eps, lin = c["norm_num_groups"], c["norm_eps"], c["use_linear_projection"]
        temb = boc[0] * 4

        def attn_factory(n_heads):
            return lambda ch: Transformer2DModel(ch, n_heads, ch // n_heads, ctx, g, lin)

        self.conv_in = L.Conv2d(c["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb)

        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, t in enumerate(c["down_block_types"]):
            cin, out = out, boc[i]
            if t == "CrossAttnDownBlock2D":
                a = attn_factory(heads[i])
            elif t == "DownBlock2D":
                a = None
            else:
                raise ValueError(f"unsupported down block {t}")
            self.down_blocks.append(DownBlock(cin, out, temb, lpb[i], g, eps, i < nb - 1, a,
                                              c["downsample_padding"]))

        self.mid_block = UNetMidBlock2DCrossAttn(boc[-1], temb, g, eps, attn_factory(heads[-1]))

        self.up_blocks = nn.ModuleList()
        rboc, rheads, rlpb = boc[::-1], heads[::-1], lpb[::-1]
        out = rboc[0]
        for i, t in enumerate(c["up_block_types"]):
            prev, out = out, rboc[i]
            cin = rboc[min(i + 1, nb - 1)]
            if t == "CrossAttnUpBlock2D":
                a = attn_factory(rheads[i])
            elif t == "UpBlock2D":
                a = None
            else:
                raise ValueError(f"unsupported up block {t}")
            self.up_blocks.append(UpBlock(cin, prev, out, temb, rlpb[i] + 1, g, eps, i < nb - 1, a))

        self.conv_norm_out = L.GroupNorm(g, boc[0], eps)
        self.conv_out = L.Conv2d(boc[0], c["out_channels"], 3, padding=1)

    def time_embed(self, timestep, batch, dtype):
        t = torch.as_tensor(timestep)
        if t.dim() == 0:
            t = t[None]
        t = t.expand(batch)
        e = timestep_embedding(t, self.config["block_out_channels"][0],
                               self.config["flip_sin_to_cos"], self.config["freq_shift"])
        return self.time_embedding(e.to(dtype))

    def forward(self, sample, timestep, encoder_hidden_states):
        B = sample.shape[0]
        temb = self.time_embed(timestep, B, sample.dtype)  # (B, 4*C0)
        x = self.conv_in(sample)
        skips = [x]
        for blk in self.down_blocks:
            x, outs = blk(x, temb, encoder_hidden_states)
            skips.extend(outs)
        x = self.mid_block(x, temb, encoder_hidden_states)
        for i, blk in enumerate(self.up_blocks):
            n = len(blk.resnets)
            mine, skips = skips[-n:], skips[:-n]
            # upsample to the spatial size of the next skip, so odd sizes work
            size = skips[-1].shape[-2:] if (blk.has_up and skips) else None
            x = blk(x, mine, temb, encoder_hidden_states, size)
        x = F.silu(self.conv_norm_out(x))
        return self.conv_out(x)

    def load_state_dict_checked(self, sd):
        L.load_state(self, sd)

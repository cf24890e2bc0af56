"""Faster stand-ins for two attention products of tools/sdref on this torch build.

Debian's python3-torch (1.13, no MKL) computes batched matrix products
(torch.bmm, and @ on 3-D/4-D tensors) with a plain loop that runs at a few
hundred MFLOP/s, while a 2-D product goes to BLAS. These functions compute
exactly the same mathematics as sdref's attention (same scaling, same mask,
same softmax), one 2-D product per (batch, head), and `install()` swaps them
in for training only. The exported files do not depend on them in any way;
`check()` compares them with the sdref originals.
"""
import math

import torch
import torch.nn.functional as F


def _bmm(a, b):
    """(N, i, k) @ (N, k, j) -> (N, i, j) as N BLAS products."""
    return torch.stack([torch.mm(a[n], b[n]) for n in range(a.shape[0])])


def attention(q, k, v, heads):
    """Same contract as tools.sdref.unet.attention: q (B, N, h*d), k/v (B, M, h*d)."""
    B, N, C = q.shape
    M = k.shape[1]
    d = C // heads
    q = q.view(B, N, heads, d).transpose(1, 2).reshape(B * heads, N, d)
    k = k.view(B, M, heads, d).transpose(1, 2).reshape(B * heads, M, d)
    v = v.view(B, M, heads, d).transpose(1, 2).reshape(B * heads, M, d)
    w = torch.softmax(_bmm(q, k.transpose(1, 2)) * (d ** -0.5), dim=-1)
    return _bmm(w, v).view(B, heads, N, d).transpose(1, 2).reshape(B, N, C)


def clip_attention_forward(self, x, mask):
    """Same contract as tools.sdref.clip.CLIPAttention.forward."""
    B, T, D = x.shape
    h, dh = self.heads, D // self.heads
    q = self.q_proj(x).view(B, T, h, dh).transpose(1, 2).reshape(B * h, T, dh)
    k = self.k_proj(x).view(B, T, h, dh).transpose(1, 2).reshape(B * h, T, dh)
    v = self.v_proj(x).view(B, T, h, dh).transpose(1, 2).reshape(B * h, T, dh)
    w = _bmm(q, k.transpose(1, 2)) / math.sqrt(dh) + mask
    a = _bmm(torch.softmax(w, dim=-1), v).view(B, h, T, dh)
    return self.out_proj(a.transpose(1, 2).reshape(B, T, D))


def install():
    from tools.sdref import clip, unet, vae
    unet.attention = attention
    vae.attention = attention
    clip.CLIPAttention.forward = clip_attention_forward


def check():
    from tools.sdref import clip, unet
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 20, 16, generator=g) for _ in range(3))
    ref = unet.attention(q, k, v, 4)
    assert torch.allclose(attention(q, k, v, 4), ref, atol=1e-5)
    m = clip.CLIPAttention(16, 4)
    x = torch.randn(2, 7, 16, generator=g)
    mask = torch.full((7, 7), float("-inf")).triu(1)
    assert torch.allclose(clip_attention_forward(m, x, mask), m(x, mask), atol=1e-5)
    return True

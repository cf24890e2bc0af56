"""CLIP text transformer (the text half of CLIP), transformers parameter names.

Architecture (pre-norm transformer with a causal mask):
  x = token_embedding[ids] + position_embedding[0..T)          (B, T, D)
  per layer:  x = x + out_proj(attn(layer_norm1(x)))  (causal, H heads)
              x = x + fc2(act(fc1(layer_norm2(x))))
  last_hidden_state = final_layer_norm(x)
  pooled = last_hidden_state[b, argmax(ids[b])]   (the EOS token has the
           largest id in CLIP's vocabulary; this is the original rule)

act is quick_gelu (x * sigmoid(1.702 x), OpenAI CLIP, SD 1.x) or exact
erf-gelu (OpenCLIP, SD 2.x).

forward returns every hidden state so clip-skip can be computed: hidden[0] is
the embedding output and hidden[i] the output of layer i (before the final
layer norm). Stable Diffusion with clip skip k uses
final_layer_norm(hidden[-k]); k = 1 is last_hidden_state.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import layers as L

DEFAULTS = {
    "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
    "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1,
    "projection_dim": 512,
}


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def activation(name):
    if name == "quick_gelu":
        return quick_gelu
    if name == "gelu":
        return F.gelu  # exact (erf) form
    raise ValueError(f"unsupported hidden_act {name!r}")


class CLIPAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads = heads
        self.q_proj = L.Linear(dim, dim)
        self.k_proj = L.Linear(dim, dim)
        self.v_proj = L.Linear(dim, dim)
        self.out_proj = L.Linear(dim, dim)

    def forward(self, x, mask):
        # x: (B, T, D); mask: (T, T) additive, -inf above the diagonal
        B, T, D = x.shape
        h, dh = self.heads, D // self.heads
        q = self.q_proj(x).view(B, T, h, dh).transpose(1, 2)  # (B, h, T, dh)
        k = self.k_proj(x).view(B, T, h, dh).transpose(1, 2)
        v = self.v_proj(x).view(B, T, h, dh).transpose(1, 2)
        w = (q @ k.transpose(-1, -2)) / math.sqrt(dh) + mask  # (B, h, T, T)
        a = torch.softmax(w, dim=-1) @ v                     # (B, h, T, dh)
        return self.out_proj(a.transpose(1, 2).reshape(B, T, D))


class CLIPMLP(nn.Module):
    def __init__(self, dim, inner, act):
        super().__init__()
        self.act = activation(act)
        self.fc1 = L.Linear(dim, inner)
        self.fc2 = L.Linear(inner, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.self_attn = CLIPAttention(d, c["num_attention_heads"])
        self.layer_norm1 = L.LayerNorm(d, eps)
        self.mlp = CLIPMLP(d, c["intermediate_size"], c["hidden_act"])
        self.layer_norm2 = L.LayerNorm(d, eps)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = L.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = L.Embedding(c["max_position_embeddings"], c["hidden_size"])

    def forward(self, ids):
        T = ids.shape[1]
        pos = torch.arange(T, device=ids.device)
        return self.token_embedding(ids) + self.position_embedding(pos)[None]


class CLIPEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(c) for _ in range(c["num_hidden_layers"])])


class CLIPTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = CLIPEmbeddings(c)
        self.encoder = CLIPEncoder(c)
        self.final_layer_norm = L.LayerNorm(c["hidden_size"], c["layer_norm_eps"])


class CLIPTextModel(nn.Module):
    """CLIPTextModel(config) with config a transformers CLIPTextConfig-style dict."""

    def __init__(self, config):
        super().__init__()
        c = dict(DEFAULTS)
        c.update({k: v for k, v in config.items() if not k.startswith("_")})
        self.config = c
        self.text_model = CLIPTransformer(c)

    def forward(self, ids, clip_skip=1):
        """ids: (B, T) int64, T <= max_position_embeddings.

        Returns dict(last_hidden_state (B,T,D) after the final layer norm,
        hidden_states: list of num_hidden_layers + 1 tensors (B,T,D) before it,
        pooled (B,D) at the argmax-id position, and skipped: the final layer
        norm of hidden_states[-clip_skip]).
        """
        tm = self.text_model
        B, T = ids.shape
        x = tm.embeddings(ids)
        mask = torch.full((T, T), float("-inf"), dtype=x.dtype, device=x.device).triu(1)
        hidden = [x]
        for layer in tm.encoder.layers:
            x = layer(x, mask)
            hidden.append(x)
        last = tm.final_layer_norm(x)
        eos_pos = ids.argmax(dim=-1)
        pooled = last[torch.arange(B), eos_pos]
        skipped = tm.final_layer_norm(hidden[-clip_skip]) if clip_skip > 1 else last
        return {"last_hidden_state": last, "hidden_states": hidden, "pooled": pooled,
                "skipped": skipped}

    def load_state_dict_checked(self, sd):
        # Older transformers releases saved the position_ids buffer; it is
        # always arange(T) and carries nothing, so it is accepted and dropped.
        L.load_state(self, sd, ignore=("text_model.embeddings.position_ids",))

"""Shared construction helpers.

DEVICE is the device new parameters are created on. Set it to "meta" (with
init_device) to build the full-size SD models and count their parameters
without allocating gigabytes.
"""
import contextlib

import torch
from torch import nn

_state = {"device": None}


@contextlib.contextmanager
def init_device(device):
    old = _state["device"]
    _state["device"] = device
    try:
        yield
    finally:
        _state["device"] = old


def _kw():
    return {"device": _state["device"]} if _state["device"] is not None else {}


def Linear(i, o, bias=True):
    return nn.Linear(i, o, bias=bias, **_kw())


def Conv2d(i, o, k, stride=1, padding=0):
    return nn.Conv2d(i, o, k, stride=stride, padding=padding, **_kw())


def GroupNorm(groups, ch, eps):
    return nn.GroupNorm(groups, ch, eps=eps, affine=True, **_kw())


def LayerNorm(dim, eps):
    return nn.LayerNorm(dim, eps=eps, **_kw())


def Embedding(n, dim):
    return nn.Embedding(n, dim, **_kw())


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def load_state(module, sd, ignore=()):
    """Load sd into module strictly: every parameter present, nothing unknown
    (except names in ignore), shapes equal. Values are cast to the module's dtype."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unknown = [k for k in sd if k not in own and k not in ignore]
    if missing or unknown:
        raise KeyError(f"state dict mismatch: missing {missing[:8]} (+{max(0, len(missing) - 8)}), "
                       f"unknown {unknown[:8]} (+{max(0, len(unknown) - 8)})")
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(f"{k}: shape {tuple(sd[k].shape)} != expected {tuple(v.shape)}")
    module.load_state_dict({k: sd[k].to(own[k].dtype) for k in own}, strict=True)

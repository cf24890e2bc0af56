"""Names of the original single-file checkpoints (CompVis/LDM and Stability
layout) versus diffusers / transformers names.

Single-file prefixes:
  model.diffusion_model.*   UNet       (input_blocks / middle_block / output_blocks)
  first_stage_model.*       VAE        (encoder.down.N.block.M, mid.attn_1.q/k/v/proj_out)
  cond_stage_model.transformer.text_model.*   SD 1.x CLIP (transformers names inside)
  cond_stage_model.model.*  SD 2.x OpenCLIP (resblocks with fused in_proj)
  betas, alphas_cumprod, ... schedule buffers of the training script (ignored)

UNet index rule (L = layers_per_block): down level i, resnet j is
input_blocks[1 + i(L+1) + j] (.0 resnet, .1 transformer); its downsampler is
input_blocks[1 + i(L+1) + L].0.op. Up block i (diffusers order, deepest
first), resnet j <= L is output_blocks[i(L+1) + j]; its upsampler is
output_blocks[i(L+1) + L].{1, or 2 when the block has attention}.conv.
VAE decoder: diffusers up_blocks[i] is decoder.up[n-1-i] (the original counts
from the shallowest level). VAE attention q/k/v/proj_out are 1x1 convs
(C, C, 1, 1) in the original and linears (C, C) in diffusers.

OpenCLIP (SD 2.x): attn.in_proj_weight (3D, D) = [q; k; v]; positional_embedding
(T, D) is position_embedding.weight; ln_final is final_layer_norm;
text_projection (D, P) is used as x @ P (CLIPTextModelWithProjection stores
its transpose as text_projection.weight); logit_scale is unused by SD.
SD 2.x uses the PENULTIMATE resblock's output followed by ln_final; a
diffusers SD 2.x text encoder therefore has one layer fewer than the
original (23 of 24) and uses its last hidden state.
"""
import re
from collections import OrderedDict

import torch

from . import layers as L
from .clip import CLIPTextModel
from .unet import UNet2DConditionModel
from .vae import AutoencoderKL

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPENCLIP_PREFIX = "cond_stage_model.model."
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
                    "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                    "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")

UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
              "conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _sub(rest, table):
    """Rename the leading module name of rest ("norm1.weight") through table."""
    for k in sorted(table, key=len, reverse=True):
        if rest.startswith(k + "."):
            return table[k] + rest[len(k):]
    raise KeyError(f"no mapping for {rest}")


def _lpb(cfg, nb):
    v = cfg.get("layers_per_block", 2)
    if isinstance(v, (list, tuple)):
        if len(set(v)) != 1:
            raise ValueError("per-block layers_per_block has no single-file layout here")
        v = v[0]
    return int(v)


def unet_key_to_ldm(key, cfg):
    """diffusers UNet parameter name -> original name (without the prefix)."""
    nb = len(cfg["block_out_channels"])
    Lp = _lpb(cfg, nb)
    if key.startswith("conv_in."):
        return "input_blocks.0.0." + key[len("conv_in."):]
    if key.startswith("time_embedding.linear_1."):
        return "time_embed.0." + key[len("time_embedding.linear_1."):]
    if key.startswith("time_embedding.linear_2."):
        return "time_embed.2." + key[len("time_embedding.linear_2."):]
    if key.startswith("conv_norm_out."):
        return "out.0." + key[len("conv_norm_out."):]
    if key.startswith("conv_out."):
        return "out.2." + key[len("conv_out."):]
    m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.*)", key)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"input_blocks.{1 + i * (Lp + 1) + j}.0.{_sub(rest, UNET_RESNET)}"
        if kind == "attentions":
            return f"input_blocks.{1 + i * (Lp + 1) + j}.1.{rest}"
        return f"input_blocks.{1 + i * (Lp + 1) + Lp}.0.op.{rest[len('conv.'):]}"
    m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key)
    if m:
        kind, j, rest = m[1], int(m[2]), m[3]
        if kind == "resnets":
            return f"middle_block.{2 * j}.{_sub(rest, UNET_RESNET)}"
        return f"middle_block.1.{rest}"
    m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.*)", key)
    if m:
        i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        if kind == "resnets":
            return f"output_blocks.{i * (Lp + 1) + j}.0.{_sub(rest, UNET_RESNET)}"
        if kind == "attentions":
            return f"output_blocks.{i * (Lp + 1) + j}.1.{rest}"
        has_attn = cfg["up_block_types"][i].startswith("CrossAttn")
        return f"output_blocks.{i * (Lp + 1) + Lp}.{2 if has_attn else 1}.{rest}"
    raise KeyError(f"unknown UNet parameter {key}")


def vae_key_to_ldm(key, cfg):
    """diffusers VAE parameter name -> original name (without the prefix)."""
    nb = len(cfg["block_out_channels"])
    for part in ("encoder", "decoder"):
        if not key.startswith(part + "."):
            continue
        k = key[len(part) + 1:]
        if k.startswith("conv_norm_out."):
            return f"{part}.norm_out." + k[len("conv_norm_out."):]
        if k.startswith("conv_in.") or k.startswith("conv_out."):
            return f"{part}.{k}"
        m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", k)
        if m:
            if m[1] == "resnets":
                return f"{part}.mid.block_{int(m[2]) + 1}.{_sub(m[3], VAE_RESNET)}"
            return f"{part}.mid.attn_1.{_sub(m[3], VAE_ATTN)}"
        m = re.match(r"(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.*)", k)
        if m:
            i = int(m[2]) if m[1] == "down" else nb - 1 - int(m[2])
            lvl = f"{part}.{m[1]}.{i}"
            if m[3] == "resnets":
                return f"{lvl}.block.{m[4]}.{_sub(m[5], VAE_RESNET)}"
            return f"{lvl}.{'downsample' if m[1] == 'down' else 'upsample'}.{m[5]}"
    if key.startswith("quant_conv.") or key.startswith("post_quant_conv."):
        return key
    raise KeyError(f"unknown VAE parameter {key}")


def _is_vae_attn_weight(ldm_key):
    return ".attn_1." in ldm_key and ldm_key.endswith(".weight") and ".attn_1.norm." not in ldm_key


def unet_name_map(cfg):
    """OrderedDict diffusers name -> original name (with prefix), every parameter."""
    with L.init_device("meta"):
        keys = UNet2DConditionModel(cfg).state_dict().keys()
    return OrderedDict((k, UNET_PREFIX + unet_key_to_ldm(k, cfg)) for k in keys)


def vae_name_map(cfg):
    with L.init_device("meta"):
        keys = AutoencoderKL(cfg).state_dict().keys()
    return OrderedDict((k, VAE_PREFIX + vae_key_to_ldm(k, cfg)) for k in keys)


# ----------------------------------------------------------------------------- text encoders
def clip_to_ldm(te_sd, position_ids=True):
    """SD 1.x: transformers names under cond_stage_model.transformer.; the
    original files also carry embeddings.position_ids (int64 arange)."""
    out = OrderedDict((CLIP_PREFIX + k, v) for k, v in te_sd.items())
    if position_ids:
        T = te_sd["text_model.embeddings.position_embedding.weight"].shape[0]
        out[CLIP_PREFIX + "text_model.embeddings.position_ids"] = \
            torch.arange(T, dtype=torch.int64)[None]
    return out


def clip_from_ldm(sd):
    return OrderedDict((k[len(CLIP_PREFIX):], v) for k, v in sd.items()
                       if k.startswith(CLIP_PREFIX) and not k.endswith("position_ids"))


OPENCLIP_LAYER = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1",
                  "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


def openclip_to_ldm(te_sd, text_projection=None, logit_scale=2.6592600345611572):
    """transformers CLIPTextModel weights -> SD 2.x OpenCLIP names (fused q/k/v).

    text_projection: (D, P) tensor or None (identity-free: a (D, D) zero
    matrix is NOT invented; pass one to have the key present)."""
    out = OrderedDict()
    p = OPENCLIP_PREFIX
    out[p + "token_embedding.weight"] = te_sd["text_model.embeddings.token_embedding.weight"]
    out[p + "positional_embedding"] = te_sd["text_model.embeddings.position_embedding.weight"]
    out[p + "ln_final.weight"] = te_sd["text_model.final_layer_norm.weight"]
    out[p + "ln_final.bias"] = te_sd["text_model.final_layer_norm.bias"]
    n = 1 + max(int(k.split(".")[3]) for k in te_sd if k.startswith("text_model.encoder.layers."))
    for i in range(n):
        h = f"text_model.encoder.layers.{i}."
        o = f"{p}transformer.resblocks.{i}."
        out[o + "attn.in_proj_weight"] = torch.cat(
            [te_sd[h + f"self_attn.{x}_proj.weight"] for x in "qkv"], dim=0)
        out[o + "attn.in_proj_bias"] = torch.cat(
            [te_sd[h + f"self_attn.{x}_proj.bias"] for x in "qkv"], dim=0)
        for a, b in OPENCLIP_LAYER.items():
            out[o + a + ".weight"] = te_sd[h + b + ".weight"]
            out[o + a + ".bias"] = te_sd[h + b + ".bias"]
    if text_projection is not None:
        out[p + "text_projection"] = text_projection
    out[p + "logit_scale"] = torch.tensor(logit_scale, dtype=torch.float32)
    return out


def openclip_from_ldm(sd, drop_last_layers=0):
    """SD 2.x OpenCLIP names -> transformers names. drop_last_layers=1 gives the
    23-layer encoder diffusers ships for SD 2.x (penultimate-layer conditioning).
    text_projection and logit_scale are dropped (SD does not use them)."""
    p = OPENCLIP_PREFIX
    te = OrderedDict()
    te["text_model.embeddings.token_embedding.weight"] = sd[p + "token_embedding.weight"]
    te["text_model.embeddings.position_embedding.weight"] = sd[p + "positional_embedding"]
    te["text_model.final_layer_norm.weight"] = sd[p + "ln_final.weight"]
    te["text_model.final_layer_norm.bias"] = sd[p + "ln_final.bias"]
    n = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith(p + "transformer.resblocks."))
    for i in range(n - drop_last_layers):
        o = f"{p}transformer.resblocks.{i}."
        h = f"text_model.encoder.layers.{i}."
        w = sd[o + "attn.in_proj_weight"]
        b = sd[o + "attn.in_proj_bias"]
        D = w.shape[1]
        for j, x in enumerate("qkv"):
            te[h + f"self_attn.{x}_proj.weight"] = w[j * D:(j + 1) * D]
            te[h + f"self_attn.{x}_proj.bias"] = b[j * D:(j + 1) * D]
        for a, bb in OPENCLIP_LAYER.items():
            te[h + bb + ".weight"] = sd[o + a + ".weight"]
            te[h + bb + ".bias"] = sd[o + a + ".bias"]
    return te


# ----------------------------------------------------------------------------- whole files
def to_single_file(te_sd, unet_sd, vae_sd, unet_cfg, vae_cfg, text="clip",
                   text_projection=None, schedule=None):
    """diffusers/transformers state dicts -> one original-layout state dict.

    text: "clip" (SD 1.x) or "openclip" (SD 2.x). schedule: optional dict of
    the training schedule buffers (name -> (1000,) tensor) to include."""
    out = OrderedDict()
    if schedule:
        out.update(schedule)
    um = unet_name_map(unet_cfg)
    for k, v in unet_sd.items():
        out[um[k]] = v
    vm = vae_name_map(vae_cfg)
    for k, v in vae_sd.items():
        n = vm[k]
        out[n] = v[:, :, None, None] if _is_vae_attn_weight(n) and v.dim() == 2 else v
    if text == "clip":
        out.update(clip_to_ldm(te_sd))
    elif text == "openclip":
        out.update(openclip_to_ldm(te_sd, text_projection))
    else:
        raise ValueError("text must be clip or openclip")
    return out


def detect_text_family(sd):
    if any(k.startswith(OPENCLIP_PREFIX) for k in sd):
        return "openclip"
    if any(k.startswith(CLIP_PREFIX) for k in sd):
        return "clip"
    raise ValueError("no known text encoder in the checkpoint")


def from_single_file(sd, unet_cfg, vae_cfg, drop_last_layers=0):
    """Original-layout state dict -> (text_family, te_sd, unet_sd, vae_sd).

    Every tensor must be claimed: UNet, VAE, text encoder or a schedule buffer."""
    fam = detect_text_family(sd)
    inv_u = {v: k for k, v in unet_name_map(unet_cfg).items()}
    inv_v = {v: k for k, v in vae_name_map(vae_cfg).items()}
    unet_sd, vae_sd = OrderedDict(), OrderedDict()
    for k, v in sd.items():
        if k in inv_u:
            unet_sd[inv_u[k]] = v
        elif k in inv_v:
            vae_sd[inv_v[k]] = v[:, :, 0, 0] if _is_vae_attn_weight(k) and v.dim() == 4 else v
        elif k.startswith("cond_stage_model.") or k in SCHEDULE_BUFFERS:
            continue
        else:
            raise KeyError(f"unclaimed tensor {k}")
    te = clip_from_ldm(sd) if fam == "clip" else openclip_from_ldm(sd, drop_last_layers)
    return fam, te, unet_sd, vae_sd

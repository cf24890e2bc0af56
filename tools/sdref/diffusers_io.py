"""Save and load a diffusers-format Stable Diffusion folder.

Layout written:
  model_index.json
  text_encoder/config.json, text_encoder/model.safetensors
  tokenizer/vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json
  unet/config.json, unet/diffusion_pytorch_model.safetensors
  vae/config.json, vae/diffusion_pytorch_model.safetensors
  scheduler/scheduler_config.json

dtype: "f32", "f16" or "bf16" for the stored weights. Configs are written
with sorted keys so the files are byte-for-byte reproducible.
"""
import json
import os

import torch

from . import safetensors_io as st
from .clip import CLIPTextModel
from .unet import UNet2DConditionModel
from .vae import AutoencoderKL

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
TORCH_DTYPE_NAME = {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}
DIFFUSERS_VERSION = "0.21.4"
TRANSFORMERS_VERSION = "4.33.2"


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _weights(model, dtype):
    return {k: v.detach().to(DTYPES[dtype]).contiguous() for k, v in model.state_dict().items()}


def save_tokenizer(folder, vocab, merges, pad_token="<|endoftext|>", model_max_length=77):
    """vocab: dict token -> id; merges: list of "a b" strings (no header line)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(m + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "pad_token": pad_token}
    _write_json(os.path.join(folder, "special_tokens_map.json"), special)
    cfg = dict(special)
    cfg.update({"tokenizer_class": "CLIPTokenizer", "model_max_length": model_max_length,
                "do_lower_case": True, "errors": "replace", "add_prefix_space": False,
                "clean_up_tokenization_spaces": True})
    _write_json(os.path.join(folder, "tokenizer_config.json"), cfg)


def save_pipeline(folder, text_encoder, unet, vae, tokenizer, scheduler_config, dtype="f32"):
    """Write a whole pipeline folder.

    tokenizer: dict(vocab=..., merges=[...], pad_token=...).
    scheduler_config: dict, written as scheduler/scheduler_config.json; its
    "_class_name" (default PNDMScheduler, as SD 1.5 ships) goes into model_index.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}")
    os.makedirs(folder, exist_ok=True)
    sched = dict(scheduler_config)
    sched.setdefault("_class_name", "PNDMScheduler")
    sched.setdefault("_diffusers_version", DIFFUSERS_VERSION)
    _write_json(os.path.join(folder, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None], "safety_checker": [None, None],
        "requires_safety_checker": False,
        "scheduler": ["diffusers", sched["_class_name"]],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })

    d = os.path.join(folder, "text_encoder")
    os.makedirs(d, exist_ok=True)
    tc = dict(text_encoder.config)
    tc.update({"architectures": ["CLIPTextModel"], "model_type": "clip_text_model",
               "torch_dtype": TORCH_DTYPE_NAME[dtype],
               "transformers_version": TRANSFORMERS_VERSION})
    _write_json(os.path.join(d, "config.json"), tc)
    st.save_file(_weights(text_encoder, dtype), os.path.join(d, "model.safetensors"),
                 {"format": "pt"})

    for name, model, cls in (("unet", unet, "UNet2DConditionModel"),
                             ("vae", vae, "AutoencoderKL")):
        d = os.path.join(folder, name)
        os.makedirs(d, exist_ok=True)
        cfg = dict(model.config)
        cfg.update({"_class_name": cls, "_diffusers_version": DIFFUSERS_VERSION})
        _write_json(os.path.join(d, "config.json"), cfg)
        st.save_file(_weights(model, dtype), os.path.join(d, "diffusion_pytorch_model.safetensors"),
                     {"format": "pt"})

    save_tokenizer(os.path.join(folder, "tokenizer"), tokenizer["vocab"], tokenizer["merges"],
                   tokenizer.get("pad_token", "<|endoftext|>"))
    d = os.path.join(folder, "scheduler")
    os.makedirs(d, exist_ok=True)
    _write_json(os.path.join(d, "scheduler_config.json"), sched)


def load_pipeline(folder, dtype=torch.float32):
    """Read a pipeline folder -> dict(text_encoder, unet, vae, tokenizer_dir,
    scheduler_config, model_index). Weights are converted to dtype."""
    idx = _read_json(os.path.join(folder, "model_index.json"))
    tcfg = _read_json(os.path.join(folder, "text_encoder", "config.json"))
    te = CLIPTextModel(tcfg)
    te.load_state_dict_checked(st.load_file(os.path.join(folder, "text_encoder",
                                                         "model.safetensors")))
    unet = UNet2DConditionModel(_read_json(os.path.join(folder, "unet", "config.json")))
    unet.load_state_dict_checked(st.load_file(
        os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors")))
    vae = AutoencoderKL(_read_json(os.path.join(folder, "vae", "config.json")))
    vae.load_state_dict_checked(st.load_file(
        os.path.join(folder, "vae", "diffusion_pytorch_model.safetensors")))
    sched = _read_json(os.path.join(folder, "scheduler", "scheduler_config.json"))
    for m in (te, unet, vae):
        m.to(dtype).eval()
    return {"text_encoder": te, "unet": unet, "vae": vae, "scheduler_config": sched,
            "tokenizer_dir": os.path.join(folder, "tokenizer"), "model_index": idx}

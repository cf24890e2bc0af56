"""sdref: an independent PyTorch reference of the Stable Diffusion networks.

Written from the published architectures (CLIP text transformer, the diffusers
UNet2DConditionModel and AutoencoderKL layouts, the CompVis/LDM checkpoint
layout) and never from the C engine, so that the engine's outputs can be held
against it. Used by the fixture generators in tools/fixtures/ and by training.

Modules:
  safetensors_io  read/write .safetensors (F32, F16, BF16, I64, I32)
  layers          the device default used while constructing modules
  clip            CLIPTextModel (transformers parameter names)
  unet            UNet2DConditionModel (diffusers parameter names)
  vae             AutoencoderKL (diffusers parameter names)
  diffusers_io    save/load a diffusers-format pipeline folder
  tokenizer       CLIP byte-level BPE tokenizer
  schedulers      timesteps, sigmas and samplers (Euler, Euler a, DPM++ 2M, DDIM, LCM)
  ldm_names       diffusers <-> original single-file checkpoint names
"""

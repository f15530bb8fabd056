"""ComfyUI-AnimateDiff-Evolved (ADE) for the tests: find it in the tested ComfyUI's ``custom_nodes/``,
load it into the in-process ComfyUI, and write the papers' models with random weights.

* ``load_ade()``: ADE is loaded from ``$COMFYUI_PATH/custom_nodes/<...AnimateDiff-Evolved...>`` the
  way ComfyUI loads a custom node folder (the harness boots ComfyUI without custom nodes).
* ``write_motion_module(ade, path)``: an AnimateDiff v2 motion module in the ``mm_sd_v15_v2`` layout
  (down/mid/up blocks, 32 positional-encoding positions) built with ADE's own ``AnimateDiffModel``
  class, random weights (norm scales 1), fp16 safetensors.
* ``write_ade_models(root, ade)``: that motion module plus a FULL-size random SD1.5 checkpoint
  (checkpoints.py; AnimateDiff injects its motion modules into the real SD1.5 block layout), about
  3 GB in ``root/checkpoints`` and ``root/animatediff_models``. The session fixture ``ade_models``
  (conftest.py) writes them once for every ADE test and deletes them afterwards.

Never write these files into the repository or into the tested ComfyUI.
"""
from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path

import torch

from comfy_harness import comfyui_path

AD_CKPT = "tfv_full_sd15.safetensors"
AD_MOTION_MODEL = "tfv_random_mm_sd_v15_v2.safetensors"
MM_POSITIONS = 32  # mm_sd_v15_v2 was trained on 16 frames with 32 positional encodings


def ade_folder() -> Path | None:
    """The ADE folder in the tested ComfyUI's custom_nodes/ (None when absent)."""
    custom = comfyui_path() / "custom_nodes"
    if not custom.is_dir():
        return None
    return next((p for p in sorted(custom.iterdir()) if "animatediff-evolved" in p.name.lower()
                 and (p / "__init__.py").is_file()), None)


def ade_missing_reason() -> str | None:
    import nodes
    if "ADE_UseEvolvedSampling" in nodes.NODE_CLASS_MAPPINGS:
        return None
    folder = ade_folder()
    if folder is None:
        return (f"ComfyUI-AnimateDiff-Evolved is not installed in the ComfyUI under test "
                f"({comfyui_path()}/custom_nodes/ComfyUI-AnimateDiff-Evolved); the AnimateDiff tests need it")
    return f"ComfyUI-AnimateDiff-Evolved at {folder} failed to load into ComfyUI (see the log above)"


def load_ade():
    """Load ADE into the booted in-process ComfyUI (once); its package module, or None if missing."""
    import nodes
    folder = ade_folder()
    if "ADE_UseEvolvedSampling" not in nodes.NODE_CLASS_MAPPINGS:
        if folder is None or not asyncio.run(nodes.load_custom_node(str(folder))):
            return None
    return sys.modules.get(str(folder).replace(".", "_x_")) if folder else None  # ComfyUI's module name


def write_motion_module(ade_pack, path, seed: int = 11) -> Path:
    """A random-weight AnimateDiff v2 motion module for SD1.5 (the layout of ``mm_sd_v15_v2``), built
    with ADE's own ``AnimateDiffModel`` from the key names that define its structure."""
    import comfy.utils
    from checkpoints import init_random
    mad = importlib.import_module(f"{ade_pack.__name__}.animatediff.motion_module_ad")
    tt = "motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.{}.pos_encoder.pe"
    skeleton = {}
    for block, ch in (("down_blocks.0", 320), ("down_blocks.3", 1280), ("up_blocks.0", 1280), ("mid_block", 1280)):
        for a in (0, 1):
            skeleton[f"{block}.{tt.format(a)}"] = torch.zeros(1, MM_POSITIONS, ch)
    sd, info = mad.normalize_ad_state_dict(dict(skeleton), "random")
    model = mad.AnimateDiffModel(sd, info)
    init_random(model, seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.endswith("pos_encoder.pe"):
                v.copy_(torch.randn(v.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file({k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()},
                                str(path))
    del model
    return path


def write_ade_models(root, ade_pack) -> dict:
    """Write the full-size random SD1.5 checkpoint and the random v2 motion module under ``root``."""
    from checkpoints import write_sd15_checkpoint
    root = Path(root)
    write_sd15_checkpoint(root / "checkpoints" / AD_CKPT, "full", seed=0)
    write_motion_module(ade_pack, root / "animatediff_models" / AD_MOTION_MODEL)
    return {"root": root, "ckpt": AD_CKPT, "motion_model": AD_MOTION_MODEL,
            "checkpoints": root / "checkpoints", "animatediff_models": root / "animatediff_models"}


def ade_node(name: str):
    """An instance's bound FUNCTION of a registered node class, e.g. ``ade_node("ADE_UseEvolvedSampling")``."""
    import nodes
    cls = nodes.NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)


def first(out):
    """The first output of a V1 node call (a tuple) or a V3 NodeOutput."""
    if isinstance(out, tuple):
        return out[0]
    if isinstance(out, dict) and "result" in out:
        return out["result"][0]
    return out.result[0]

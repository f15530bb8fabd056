"""ComfyUI bridge: latent layout, progress (I4VGen).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from typing import Callable

import torch

import comfy.utils
import latent_preview

from .calls import SamplingContext
from .models import InterruptedError_


def latent_dimensions(model) -> int:
    """Spatial(-temporal) dims of the MODEL's latents: 2 for image models whose videos are frames as
    batch ``[F, C, H, W]`` (SD1.5 + AnimateDiff), 3 for native video latents ``[B, C, T, H, W]``
    (Wan, Hunyuan, LTXV); from ``latent_format.latent_dimensions``."""
    return int(getattr(model.get_model_object("latent_format"), "latent_dimensions", 2))


def latent_channels(model) -> int:
    """Latent channel count C of the MODEL's latent format (SD1.5: 4, Wan 2.1: 16)."""
    return int(model.get_model_object("latent_format").latent_channels)


def latent_format_name(model) -> str:
    """Class name of the MODEL's latent format (e.g. ``SD15``, ``Wan21``), for error messages."""
    return type(model.get_model_object("latent_format")).__name__


def process_latent_in(ctx: "SamplingContext", latent: torch.Tensor) -> torch.Tensor:
    """The model-space version of a raw latent inside ``sample()`` (``ctx.latent_image`` is left
    unshifted by ComfyUI when the latent is all zeros; this always applies the shift)."""
    return ctx.guider.inner_model.process_latent_in(latent)


def iteration_progress(model, total: int) -> Callable[[int, torch.Tensor], None]:
    """One progress bar of ``total`` iterations with latent previews (best effort).

    Returns ``update(i, latent)``: iteration ``i`` (0-based) is done; ``latent`` (model space,
    ``[B, C, ...]``) is shown as the preview when a previewer is configured.
    """
    total = max(int(total), 1)
    cb = None
    try:
        cb = latent_preview.prepare_callback(model, total)
    except Exception:  # previews are best-effort (no previewer configured)
        cb = None
    pbar = comfy.utils.ProgressBar(total) if cb is None else None

    state = {"cb": cb, "pbar": pbar}

    def update(i: int, latent: torch.Tensor) -> None:
        if state["cb"] is not None:
            try:
                state["cb"](min(int(i), total - 1), latent, latent, total)
                return
            except InterruptedError_:
                raise
            except Exception:  # a previewer that cannot decode this latent: keep the bar only
                state["cb"] = None
                state["pbar"] = comfy.utils.ProgressBar(total)
        state["pbar"].update_absolute(min(int(i) + 1, total), total)

    return update

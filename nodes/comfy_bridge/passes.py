"""ComfyUI bridge: multi-pass samplers (FreeInit).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

import comfy.samplers

from .calls import _OWN_LOOP
from .models import WrappersMP, is_max_denoise
from .patches import _OUTER_SAMPLE_SAMPLER_INDEX

# A SAMPLER that runs its inner sampler several times inside ONE ComfyUI sampling (model loaded once,
# conds processed once), and an OUTER_SAMPLE patch that wraps every sampler node's SAMPLER in it. The
# wrapper sits below every SAMPLER_SAMPLE wrapper and after every OUTER_SAMPLE noise swap, so noise
# edits of other patches (SmoothInit (KSampler), Dependency Noise (KSampler), AnimateDiff-Evolved)
# happen once, before the first pass, whatever order the patches were applied in.

@dataclass
class SamplerPasses:
    """One call of a multi-pass SAMPLER, inside ``CFGGuider.sample``.

    noise: the initial unit noise ``[B, C, ...]`` (model device) after every noise patch;
    latent_image: the processed input latent (zeros for an empty latent); sigmas: the schedule (device);
    max_denoise: ComfyUI's rule for sigmas[0]; seed: the sampler's seed (may be None);
    callback: the sampler node's ``callback(step, x0, x, total_steps)`` (progress bar + previews) or None.
    """
    inner: Any
    model_wrap: Any
    model_sampling: Any
    sigmas: torch.Tensor
    extra_args: dict
    callback: Any
    noise: torch.Tensor
    latent_image: torch.Tensor
    denoise_mask: Any
    disable_pbar: bool
    max_denoise: bool
    seed: int | None

    def run_pass(self, noise: torch.Tensor, callback=None, sigmas: torch.Tensor | None = None) -> torch.Tensor:
        """One full run of the inner sampler from unit ``noise`` over ``sigmas`` (default: the call's
        schedule); returns its output (model space, the clean latent when sigmas[-1] == 0)."""
        return self.inner.sample(self.model_wrap, self.sigmas if sigmas is None else sigmas, dict(self.extra_args),
                                 callback, noise, self.latent_image, self.denoise_mask, self.disable_pbar)


class MultiPassSampler(comfy.samplers.Sampler):
    """A ComfyUI SAMPLER wrapping ``inner``: ``sample(...)`` returns ``run(SamplerPasses)``."""

    def __init__(self, inner, run: Callable[[SamplerPasses], torch.Tensor], tag: str = ""):
        self.inner, self.run, self.tag = inner, run, tag

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        ms = model_wrap.inner_model.model_sampling
        md = (self.inner.max_denoise(model_wrap, sigmas) if hasattr(self.inner, "max_denoise")
              else is_max_denoise(ms, sigmas))
        call = SamplerPasses(inner=self.inner, model_wrap=model_wrap, model_sampling=ms, sigmas=sigmas,
                             extra_args=extra_args, callback=callback, noise=noise, latent_image=latent_image,
                             denoise_mask=denoise_mask, disable_pbar=disable_pbar, max_denoise=bool(md),
                             seed=extra_args.get("seed", None))
        return self.run(call)


def add_outer_sampler_wrapper(model, key: str, wrap: Callable[[Any], Any]):
    """Clone ``model`` with an OUTER_SAMPLE wrapper that replaces the SAMPLER of every sampler node
    (KSampler, KSamplerAdvanced, SamplerCustom[Advanced]) by ``wrap(sampler)``. The pack's own loops
    (:func:`run_in_sampling`: NOISE nodes, NI-VSDS) keep their sampler. The input MODEL is not mutated."""
    def wrapper(executor, noise, *args, **kwargs):
        i = _OUTER_SAMPLE_SAMPLER_INDEX
        if not _OWN_LOOP.get():
            if len(args) > i:
                args = args[:i] + (wrap(args[i]),) + args[i + 1:]
            elif "sampler" in kwargs:
                kwargs["sampler"] = wrap(kwargs["sampler"])
        return executor(noise, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, wrapper)
    return m

"""ComfyUI bridge: two-stage sampling with two models (Wan 2.2 14B high-noise / low-noise experts).

Part of the one package that touches ComfyUI internals (see ``__init__``).

The stock Wan 2.2 14B graph samples one video with two sampler nodes: KSamplerAdvanced #1 on the
high-noise expert (add_noise enable, steps 0..k, return_with_leftover_noise) and KSamplerAdvanced #2
on the low-noise expert (add_noise disable, steps k..N). A multi-pass method (FreeInit) that needs the
finished video after every pass has to run the first stage again from inside the second one. This
module records what the first sampler did (:class:`FirstStage`: its guider, sampler, schedule, unit
noise after every noise patch, latents and seed), re-runs that first stage from another unit noise
inside the second sampler (:func:`rerun_first_stage`, a nested ``CFGGuider.sample`` of the first
model with every noise patch passing the noise through) and gives the second sampler its model back
afterwards (:func:`resume_sampling`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import comfy.model_management
import comfy.sampler_helpers
import comfy.samplers

from .calls import _OWN_LOOP
from .models import WrappersMP, intermediate_device
from .passes import SamplerPasses

# OUTER_SAMPLE's positional arguments after ``noise`` (both ComfyUI versions in use):
# latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed (0.33.0 adds latent_shapes=)
_LATENT, _SAMPLER, _MASK, _SEED = 0, 1, 3, 6


@dataclass
class OuterCall:
    """One sampler node's sampling as its OUTER_SAMPLE wrapper sees it.

    latent_image: the latent the sampler node passed (raw, before ``process_latent_in``; for a second
    stage this is the first stage's output exactly as that node returned it); denoise_mask: the noise
    mask or None; seed: the sampler's seed; output: the node's result (raw latent space), set after the
    sampling returned; extras: free slots for the caller (e.g. a first-stage record to publish)."""
    latent_image: torch.Tensor | None
    denoise_mask: Any
    seed: int | None
    output: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)


def add_outer_stage_wrapper(model, key: str, wrap: Callable[[Any, OuterCall], Any],
                            done: Callable[[OuterCall], None] | None = None):
    """Clone ``model`` with an OUTER_SAMPLE wrapper that replaces the SAMPLER of every sampler node by
    ``wrap(sampler, outer)`` and, after the sampling returned, calls ``done(outer)`` with
    ``outer.output`` set. The pack's own loops and the nested re-runs of :func:`rerun_first_stage`
    keep their sampler. The input MODEL is not mutated."""
    def wrapper(executor, noise, *args, **kwargs):
        if _OWN_LOOP.get():
            return executor(noise, *args, **kwargs)
        args = list(args)

        def get(i, name):
            return args[i] if len(args) > i else kwargs.get(name)

        outer = OuterCall(latent_image=get(_LATENT, "latent_image"), denoise_mask=get(_MASK, "denoise_mask"),
                          seed=get(_SEED, "seed"))
        if len(args) > _SAMPLER:
            args[_SAMPLER] = wrap(args[_SAMPLER], outer)
        elif "sampler" in kwargs:
            kwargs["sampler"] = wrap(kwargs["sampler"], outer)
        out = executor(noise, *args, **kwargs)
        outer.output = out
        if done is not None:
            done(outer)
        return out

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, wrapper)
    return m


@dataclass
class FirstStage:
    """What the first sampler of a two-stage graph did, enough to run it again from other noise.

    guider: its guider (conds, CFG, patched model); sampler: its SAMPLER (without our wrapper);
    sigmas: its schedule ``[k + 1]`` (sigmas[-1] > 0, the switch sigma); noise: its unit noise
    ``[B, C, ...]`` after every noise patch; latent_image: its processed input latent;
    latent_raw: the same before ``process_latent_in``; max_denoise: ComfyUI's rule for sigmas[0];
    model_sampling: the first model's; seed: the sampler's seed; attends_across_batch: the first model
    mixes the samples of its batch (:attr:`SamplerPasses.attends_across_batch`); denoise_mask /
    denoise_mask_raw: its noise mask as the sampler got it (prepared to the latent's shape) / as the
    sampler node got it (or None; an in-place start image, Set Latent Noise Mask); output_raw: the sampler
    node's result (float32, what the second sampler receives). Tensors on the model device while the
    first sampler runs, on the intermediate device once kept (:func:`store_first_stage`)."""
    guider: Any
    sampler: Any
    sigmas: torch.Tensor
    noise: torch.Tensor
    latent_image: torch.Tensor
    latent_raw: torch.Tensor | None
    max_denoise: bool
    model_sampling: Any
    seed: int | None
    attends_across_batch: bool = False
    output_raw: torch.Tensor | None = None
    denoise_mask: torch.Tensor | None = None
    denoise_mask_raw: torch.Tensor | None = None


def first_stage(call: SamplerPasses, outer: OuterCall) -> FirstStage:
    """The :class:`FirstStage` record of a sampling (``call`` inside it, ``outer`` its OUTER view)."""
    return FirstStage(guider=call.model_wrap, sampler=call.inner, sigmas=call.sigmas.detach().clone(),
                      noise=call.noise.detach().clone(), latent_image=call.latent_image.detach().clone(),
                      latent_raw=outer.latent_image, max_denoise=call.max_denoise,
                      model_sampling=call.model_sampling, seed=call.seed,
                      attends_across_batch=call.attends_across_batch,
                      denoise_mask=None if call.denoise_mask is None else call.denoise_mask.detach().clone(),
                      denoise_mask_raw=outer.denoise_mask)


def store_first_stage(stage: FirstStage, output: torch.Tensor) -> FirstStage:
    """``stage`` as a node keeps it between its two sampler nodes (and while its outputs are cached,
    across queue items): ``output_raw`` = the first sampler's result ``output`` (float32), and the
    noise, latents and schedule moved to the intermediate device (CPU), so a kept record holds no
    VRAM. The second sampler moves what it uses back to its device."""
    dev = intermediate_device()
    stage.output_raw = output.detach().to(device=dev, dtype=torch.float32)
    stage.noise, stage.latent_image, stage.sigmas = (t.to(dev) for t in (stage.noise, stage.latent_image,
                                                                          stage.sigmas))
    if stage.latent_raw is not None:
        stage.latent_raw = stage.latent_raw.detach().to(dev)
    for name in ("denoise_mask", "denoise_mask_raw"):
        m = getattr(stage, name)
        if isinstance(m, torch.Tensor):
            setattr(stage, name, m.detach().to(dev))
    return stage


def is_output_of(stage: FirstStage, latent_raw: torch.Tensor | None) -> bool:
    """True when ``latent_raw`` (a second sampler's raw input latent) is exactly ``stage``'s output as
    the first sampler node returned it: compared in ``latent_raw``'s dtype, since a node may hand the
    LATENT on in a narrower dtype than the float32 sampling result (KSampler[Advanced] casts it to
    ``intermediate_dtype()``: float16 under ComfyUI's ``--fp16-intermediates``)."""
    out = stage.output_raw
    if out is None or latent_raw is None or tuple(out.shape) != tuple(latent_raw.shape):
        return False
    if not latent_raw.is_floating_point():
        return False
    return bool(torch.equal(out.to(dtype=latent_raw.dtype), latent_raw.detach().to(device=out.device)))


class _PinnedNoise(comfy.samplers.Sampler):
    """A SAMPLER that runs ``inner`` from ``noise`` (unit noise ``[B, C, ...]``) whatever noise the
    sampling hands it. A re-run's start noise is already past every noise edit of the recorded first
    sampling (FreeNoise of ComfyUI's context windows, AnimateDiff-Evolved, the pack's noise patches),
    so edits that run again in the nested ``CFGGuider.sample`` (OUTER_SAMPLE / SAMPLER_SAMPLE wrappers)
    must not reach it -- the same as one-model FreeInit, whose passes call the sampler below every
    wrapper. Raises RuntimeError when a wrapper changed the noise's shape (a chunking patch)."""

    def __init__(self, inner, noise: torch.Tensor):
        self.inner, self.noise = inner, noise

    def max_denoise(self, model_wrap, sigmas):
        return self.inner.max_denoise(model_wrap, sigmas)

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
        if tuple(noise.shape) != tuple(self.noise.shape):
            raise RuntimeError(f"re-run of the first sampling: a patch changed the noise from "
                               f"{tuple(self.noise.shape)} to {tuple(noise.shape)}")
        return self.inner.sample(model_wrap, sigmas, extra_args, callback,
                                 self.noise.to(device=noise.device, dtype=noise.dtype), *args, **kwargs)


def rerun_first_stage(stage: FirstStage, noise: torch.Tensor, sigmas: torch.Tensor | None = None,
                      callback=None) -> torch.Tensor:
    """Run the recorded first stage again from unit ``noise`` ``[B, C, ...]`` (over ``sigmas``, default
    the recorded schedule) with its own guider and sampler: a nested ``CFGGuider.sample`` that loads
    the first model with the recorded noise mask, in which the pack's noise patches (SmoothInit, Dependency Noise) pass the noise
    through, multi-pass wrappers stay off and the sampler starts from ``noise`` itself, whatever other
    noise edits run again (:class:`_PinnedNoise`). ``callback(step, x0, x, total)`` as ComfyUI's.
    Returns the raw output (``process_latent_out`` applied), intermediate device, float32: what the
    first sampler node would have returned. Call :func:`resume_sampling` afterwards."""
    token = _OWN_LOOP.set(True)
    try:
        out = stage.guider.sample(noise.detach().to("cpu", copy=True), stage.latent_raw if stage.latent_raw is not None
                                  else torch.zeros_like(noise, device="cpu"),
                                  _PinnedNoise(stage.sampler, noise.detach()), stage.sigmas if sigmas is None else sigmas,
                                  denoise_mask=stage.denoise_mask_raw, callback=callback, disable_pbar=True,
                                  seed=stage.seed)
    finally:
        _OWN_LOOP.reset(token)
    return out.to(device=intermediate_device(), dtype=torch.float32)


def resume_sampling(call: SamplerPasses) -> None:
    """Give the sampling of ``call`` its model back after a nested sampling of another model.

    Loads it again through ComfyUI's ``prepare_sampling`` on copies of the guider's conds -- loading
    the other model may have offloaded it, and unloads a clone of the same weights entirely -- so the
    memory estimate is ComfyUI's own: its PREPARE_SAMPLING wrappers (core context windows budget one
    window) and the conds' ControlNet / GLIGEN models load with it. Makes it the model's current
    patcher again (a nested sampling's cleanup clears that on a shared base model) and prepares the
    ControlNets of its conds again for this model and schedule (``pre_run_control``: the nested
    sampling's cleanup reset any ControlNet its conds share with this sampling)."""
    guider = call.model_wrap
    patcher = guider.model_patcher
    conds = {k: [c.copy() for c in v] for k, v in (getattr(guider, "original_conds", None) or {}).items()}
    comfy.sampler_helpers.prepare_sampling(patcher, tuple(call.noise.shape), conds, guider.model_options)
    if hasattr(patcher.model, "current_patcher"):
        patcher.model.current_patcher = patcher
    for processed in (getattr(guider, "conds", None) or {}).values():
        comfy.samplers.pre_run_control(guider.inner_model, processed)


def second_stage_latent(call: SamplerPasses, raw: torch.Tensor, received: torch.Tensor | None = None) -> torch.Tensor:
    """A first stage's raw output as the second sampler's processed input latent, exactly as ComfyUI
    prepares it between two sampler nodes: rounded to the dtype of ``received`` (the LATENT the second
    sampler node got from the first: float16 under ``--fp16-intermediates``), to the model's device
    and float32, ``process_latent_in`` unless all zeros."""
    guider = call.model_wrap
    if received is not None and received.is_floating_point():
        raw = raw.to(dtype=received.dtype)
    x = raw.to(device=call.latent_image.device, dtype=torch.float32)
    if torch.count_nonzero(x) > 0:
        x = guider.inner_model.process_latent_in(x)
    return x

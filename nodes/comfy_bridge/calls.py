"""ComfyUI bridge: model calls.

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import comfy.samplers
import comfy.utils

from .models import WrappersMP, is_max_denoise, throw_if_interrupted
from .nested import NestedLatentError, nested_latent_shapes, packed_latent_shapes
from .order import place_sampler_sample_wrappers, ranked

# Set while run_in_sampling runs one of our own loops: the pack's noise-replacing wrappers
# (Dependency Noise (KSampler), SmoothInit (KSampler)) on that MODEL then pass the noise through, so
# a NOISE node's base noise or NI-VSDS's fixed eps* is never swapped or optimised a second time.
_OWN_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("tfv_own_sampling_loop", default=False)


class ModelCalls:
    """Counts model calls (NFE: 2 per CFG call, 1 when cfg == 1), drives one progress bar over
    all of them and checks ComfyUI's interrupt before every call."""

    def __init__(self, total_nfe: int):
        self.total = max(int(total_nfe), 1)
        self.nfe = 0
        self.pbar = comfy.utils.ProgressBar(self.total)

    def before(self) -> None:
        throw_if_interrupted()

    def after(self, n: int) -> None:
        self.nfe += n
        self.pbar.update_absolute(min(self.nfe, self.total), self.total)


def _options_at_sigma(model_options: dict, sigma: float) -> dict:
    """``model_options`` for a model call at ``sigma``. Core context windows look the call's sigma up in
    ``transformer_options["sample_sigmas"]`` (the sampler's schedule) to pick the step's windows, and
    ComfyUI 0.3.64 raises "No sample_sigmas matched current timestep" for any other sigma (0.33.0 keeps
    the last step). The pack's own calls off the schedule (SmoothInit's sigma_b) then get a copy whose
    schedule has ``sigma`` in place of the schedule sigma just above it: the windows of that step
    (step 0 for sigma_b). Without a context handler, or on the schedule, the options are unchanged."""
    to = model_options.get("transformer_options") or {}
    ss = to.get("sample_sigmas")
    if model_options.get("context_handler") is None or not isinstance(ss, torch.Tensor) or ss.numel() == 0:
        return model_options
    s = torch.tensor(float(sigma), dtype=ss.dtype, device=ss.device)
    if bool(torch.isclose(ss, s, rtol=1e-4).any()):
        return model_options
    idx = max(int((ss > s).sum()) - 1, 0)
    sched = ss.clone()
    sched[idx] = s
    mo = dict(model_options)
    mo["transformer_options"] = dict(to, sample_sigmas=sched)
    return mo


def make_denoiser(guider, extra_args: dict) -> Callable:
    """``denoise(x, sigma, cfg) -> x0`` (CFG-guided denoised latent, ``x``'s shape and dtype)
    through a CFGGuider that is inside ``sample()`` (conds processed, model loaded).

    ``sigma`` is a float or 0-dim tensor in the model's sigma units; cfg == 1 is one conditional
    model call (ComfyUI's ``sampling_function`` skips the uncond pass), otherwise two. Runs under
    ``torch.no_grad()``.
    """
    model_options = extra_args.get("model_options", {})
    seed = extra_args.get("seed", None)

    def denoise(x: torch.Tensor, sigma, cfg: float) -> torch.Tensor:
        old = guider.cfg
        guider.cfg = float(cfg)
        try:
            s = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=torch.float32)
            # No autograd graph in the pack's own loops, also when a script calls a node outside
            # ComfyUI's executor (which runs nodes under inference_mode): SmoothInit-30 kept every
            # call's graph alive there (> 5 GB).
            with torch.no_grad():
                out = guider(x, s, model_options=_options_at_sigma(model_options, sigma), seed=seed)
        finally:
            guider.cfg = old
        return out

    return denoise

@dataclass
class SamplingContext:
    """What an initialiser or NI-VSDS needs, inside ComfyUI's ``sample()``.

    noise: unit noise ``[B, C, ...]`` on the model's device; latent_image: the processed latent
    (zeros for an empty latent); sigmas: the schedule on the device; max_denoise: ComfyUI's rule.
    """
    guider: Any
    extra_args: dict
    model_sampling: Any
    sigmas: torch.Tensor
    noise: torch.Tensor
    latent_image: torch.Tensor
    max_denoise: bool
    model_patcher: Any = None
    extras: dict = field(default_factory=dict)
    denoise_mask: Any = None

    @property
    def stream_shapes(self):
        """The stream shapes when the sampled latent is a packed audio+video latent, else None."""
        return packed_latent_shapes(self.guider)

    def denoiser(self) -> Callable:
        return make_denoiser(self.guider, self.extra_args)

    def process_latent_out(self, x: torch.Tensor) -> torch.Tensor:
        return self.guider.inner_model.process_latent_out(x.to(torch.float32))


def run_in_sampling(model, positive, negative, cfg: float, latent: torch.Tensor, noise: torch.Tensor,
                    sigmas: torch.Tensor, fn: Callable[[SamplingContext], Any], seed: int | None = None,
                    denoise_mask: torch.Tensor | None = None, allow_nested: bool = False) -> Any:
    """Run ``fn(ctx)`` inside ``CFGGuider.sample`` of ``model`` with these conds, and return its result.

    This is how the NOISE nodes and NI-VSDS get ComfyUI's full model handling (loading, ControlNet,
    hooks, cleanup) around their own loop: a custom KSAMPLER whose sampler function calls ``fn``.
    ``latent``/``noise``: ``[B, C, ...]`` (CPU is fine), ``sigmas``: ``[N+1]``.

    ``ctx.noise`` is ``noise`` itself (on the model's device, float32), as it entered sampling: a
    SAMPLER_SAMPLE wrapper on ``model`` that edits the noise (core context windows' FreeNoise) does not
    reach the pack's own loops, so a NOISE node gives the same noise as the pack's KSampler patch,
    whose wrapper runs before FreeNoise (:mod:`.order`); the sampler node that later samples with the
    NOISE applies FreeNoise once. ``ctx.model_patcher`` is the guider's model patcher, read inside
    sampling, after ``CFGGuider.inner_set_conds`` (ComfyUI 0.33.0 may swap a dynamic patcher there).

    ``allow_nested``: a nested audio+video latent (MiniMax H3, LTX-2) and its nested noise are sampled
    as ComfyUI does, packed flat: ``ctx.noise``/``ctx.latent_image``/``ctx.denoise_mask`` are ``[B, 1, N]``
    and ``ctx.stream_shapes`` the streams' shapes.

    Raises: :class:`.nested.NestedLatentError` (a ValueError) for a nested latent (LTX-2
    audio+video) unless ``allow_nested``; callers name their node in front of it.
    """
    shapes = nested_latent_shapes(latent)
    if not allow_nested and (shapes is not None or nested_latent_shapes(noise) is not None):
        raise NestedLatentError(f"the latent is a nested latent of streams {shapes or nested_latent_shapes(noise)} "
                                f"(an audio+video model such as LTX-2); the pack's own sampling loops support plain "
                                f"image and video latents only.")
    result: dict = {}

    def first_noise(executor, guider_, sigmas_, extra_args, callback, noise_, *args, **kwargs):
        # outermost SAMPLER_SAMPLE wrapper: the noise before any other wrapper edits it (FreeNoise
        # reshuffles in place, hence the copy)
        result["noise"] = noise_.clone()
        return executor(guider_, sigmas_, extra_args, callback, noise_, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, "training_free_video.own_loop_noise",
                           ranked(first_noise, -1))
    place_sampler_sample_wrappers(m)
    guider = comfy.samplers.CFGGuider(m)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)

    def sampler_function(model_k, x, sigmas_dev, extra_args=None, callback=None, disable=None, **kw):
        g = model_k.inner_model
        ms = g.inner_model.model_sampling
        ctx = SamplingContext(guider=g, extra_args=extra_args or {}, model_sampling=ms, sigmas=sigmas_dev,
                              noise=result.pop("noise", model_k.noise), latent_image=model_k.latent_image,
                              max_denoise=is_max_denoise(ms, sigmas_dev),
                              model_patcher=getattr(g, "model_patcher", model),
                              denoise_mask=(extra_args or {}).get("denoise_mask"))
        result["out"] = fn(ctx)
        return x

    token = _OWN_LOOP.set(True)
    try:
        guider.sample(noise, latent, comfy.samplers.KSAMPLER(sampler_function), sigmas,
                      denoise_mask=denoise_mask, disable_pbar=True, seed=seed)
    finally:
        _OWN_LOOP.reset(token)
    return result["out"]

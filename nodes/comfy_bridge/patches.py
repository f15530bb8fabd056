"""ComfyUI bridge: patches.

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import naming
from .calls import SamplingContext, _OWN_LOOP
from .models import WrappersMP, is_max_denoise
from .nested import outer_sample_latent_shapes, packed_latent_shapes, refuse_packed_latent
from .order import RANK_NOISE, place_sampler_sample_wrappers, ranked


def _refuse_packed(node: str, shapes, supported: str) -> None:
    """:func:`.nested.refuse_packed_latent` for the sampler's latent, the error named ``node``."""
    with naming(node):
        refuse_packed_latent("the sampler's latent", shapes, supported)


def add_sampler_noise_wrapper(model, key: str, fn: Callable[[SamplingContext], torch.Tensor], node: str = "",
                              supported: str = "", allow_nested: bool = False):
    """Clone ``model`` with a SAMPLER_SAMPLE wrapper that replaces the initial unit noise of every
    sampler node (KSampler, KSamplerAdvanced, SamplerCustom[Advanced]) by ``fn(ctx)``.

    All-zero noise (KSamplerAdvanced ``add_noise = disable``, second stages) is left alone, and so
    is the noise of the pack's own loops (:func:`run_in_sampling`). The input MODEL is not mutated.
    Arguments the wrapper does not use (any ComfyUI adds later) are passed on to the executor.

    Order (:mod:`.order`, rank 1): the wrapper runs before every non-pack SAMPLER_SAMPLE wrapper, e.g.
    core context windows' FreeNoise, whatever order the patches were applied in, so ``fn`` sees the
    full-length noise and FreeNoise reshuffles ``fn``'s result; ZS^2 Long Video (rank 0) stays outside.

    Raises (when the sampler runs): a ValueError, named ``node`` (:mod:`..errors`), saying what is
    ``supported`` for a packed nested latent (LTX-2 audio+video, ``[B, 1, N]``), unless ``allow_nested``
    (then ``fn`` gets the packed noise; ``ctx.stream_shapes`` gives the streams).
    """
    def wrapper(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        # ComfyUI 0.3.64: sampler.sample(guider, sigmas, extra_args, callback, noise, latent_image=None,
        # denoise_mask=None, disable_pbar=False); anything else is passed on untouched
        latent_image = args[0] if args else kwargs.get("latent_image")
        if (not _OWN_LOOP.get() and noise is not None and torch.count_nonzero(noise) > 0
                and sigmas.shape[-1] > 1):
            if not allow_nested:
                _refuse_packed(node or key, packed_latent_shapes(guider), supported)
            ms = guider.inner_model.model_sampling
            mask = args[1] if len(args) > 1 else kwargs.get("denoise_mask")
            ctx = SamplingContext(guider=guider, extra_args=extra_args, model_sampling=ms, sigmas=sigmas,
                                  noise=noise, latent_image=latent_image,
                                  max_denoise=is_max_denoise(ms, sigmas), model_patcher=guider.model_patcher,
                                  denoise_mask=mask)
            noise = fn(ctx).to(device=noise.device, dtype=noise.dtype)
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, key, ranked(wrapper, RANK_NOISE))
    place_sampler_sample_wrappers(m)
    return m

# OUTER_SAMPLE's positional arguments after ``noise`` (ComfyUI 0.3.64 CFGGuider.outer_sample):
# latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed
_OUTER_SAMPLE_SAMPLER_INDEX = 1
_OUTER_SAMPLE_SEED_INDEX = 6


def add_outer_noise_wrapper(model, key: str, fn: Callable[[torch.Tensor, int | None], torch.Tensor], node: str = "",
                            supported: str = ""):
    """Clone ``model`` with an OUTER_SAMPLE wrapper that replaces the unit noise (CPU, before the
    model loads) by ``fn(noise, seed)`` for every sampler node; all-zero noise and the noise of the
    pack's own loops (:func:`run_in_sampling`) are left alone. Arguments the wrapper does not use
    are passed on to the executor unchanged. OUTER_SAMPLE runs before every SAMPLER_SAMPLE wrapper,
    so core context windows' FreeNoise reshuffles ``fn``'s noise (as it reshuffles RandomNoise).

    Raises (when the sampler runs): a ValueError, named ``node`` (:mod:`..errors`), saying what is
    ``supported`` for a packed nested latent (OUTER_SAMPLE's ``latent_shapes`` has > 1 stream)."""
    def wrapper(executor, noise, *args, **kwargs):
        if "seed" in kwargs:
            seed = kwargs["seed"]
        else:
            seed = args[_OUTER_SAMPLE_SEED_INDEX] if len(args) > _OUTER_SAMPLE_SEED_INDEX else None
        if not _OWN_LOOP.get() and noise is not None and torch.count_nonzero(noise) > 0:
            _refuse_packed(node or key, outer_sample_latent_shapes(args, kwargs), supported)
            noise = fn(noise, seed).to(device=noise.device, dtype=noise.dtype)
        return executor(noise, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, wrapper)
    return m

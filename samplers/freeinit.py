"""FreeInit: iterative low-frequency re-initialisation of the initial noise, in ComfyUI's sigma space.

Pure torch (no ``comfy`` import). Reference: FreeInit (Wu et al. 2023, arXiv 2312.07537), official
code ``TianxingWu/FreeInit`` (``freeinit_utils.py``, ``examples/AnimateDiff/animatediff/pipelines/
pipeline_animation.py`` L568-592) and diffusers ``src/diffusers/pipelines/free_init_utils.py``
(``FreeInitMixin``); docs/algorithms.md section 4.1.

The algorithm (``iterations`` full sampling passes; pass 0 is plain sampling from the initial noise)::

    x0_0 = sample(eps_0)
    for p = 1 .. iterations - 1:
        z_p  = re-noise x0_{p-1} to the first sigma with the SAME initial noise eps_0
        eps_p = ifft( LPF * fft(z_p) + (1 - LPF) * fft(fresh_p) )     # 3-D FFT over (T, H, W)
        x0_p = sample(eps_p)
    return x0_{iterations - 1}

**Sigma space (docs/algorithms.md section 0).** ComfyUI's samplers start from *unit* noise ``n`` that they
scale with ``noise_scaling(sigma_0, n, latent, max_denoise) = a * latent + b * n``. We re-noise the
pass result ``x0`` with the model's own ``noise_scaling`` (``z = a * x0 + b * eps_0``: EPS/V/EDM
``x0 + sqrt(1 + sigma_max^2) * eps_0`` at a full denoise, flow ``(1 - s) x0 + s eps_0``) and express
it as the unit noise ``u = (z - a * latent) / b`` that makes the sampler start exactly at ``z``. The
fresh noise is unit noise too. Mixing ``u`` with ``fresh`` is *exactly* mixing the start samples
``z`` and ``noise_scaling(sigma_0, fresh, latent)`` in the x domain (the filters are linear and
``LPF + HPF = 1``), so there is no choice to make between the two domains -- but mixing a raw
x-domain ``z`` with *unit* fresh noise would be wrong for EPS models, whose x_T has scale
``sqrt(1 + sigma^2)`` (14.6 on SD1.5): the high frequencies would be 14.6x too weak. diffusers mixes
in the VP space where ``z_T = sqrt(abar) x0 + sqrt(1 - abar) eps_0`` already has unit scale; our ``u``
equals it up to the factor ``sqrt(1 - abar_999) = 0.9976`` on ``eps_0`` (ComfyUI's ``max_denoise``
start has unit VP variance) -- the same convention ComfyUI uses for its own initial noise.

**Flow models and the signal floor.** At a flow model's first sigma 1.0, ``a = 0``: re-noising
discards ``x0`` entirely and FreeInit would only redraw the high frequencies of ``eps_0`` (nothing
of pass p carries to pass p + 1). The reference was built for SD's VP schedule, where the top
timestep keeps ``a / b = sqrt(abar_999) = 0.068`` of the result (its training-inference SNR gap
is FreeInit's premise). ``min_signal`` is a floor on that ratio: ``u = eps_0 + r * x0 - (a/b) * latent``
with ``r = max(a / b, min_signal)``, i.e. the result is re-noised at the SNR ``r^2`` and scaled to the
sampler's first sigma. The default 0.068 leaves SD-family models exactly on the reference rule (their
ratio is 0.0683) and gives flow models (Wan, Hunyuan, LTXV, SD3) and zero-terminal-SNR models the
same low-frequency signal as SD's t = 999; ``min_signal = 0`` is the literal first-sigma rule.

**Frequency grid.** The reference filters use the normalised frequency ``2 i / N - 1`` of index ``i``
on each fftshifted axis. For even ``N`` (all the reference ever ran: AnimateDiff 16 frames, 64 x 64)
that is exactly the frequency of the bin, zero at the DC bin ``N // 2``. For odd ``N`` fftshift puts DC
at ``(N - 1) / 2`` where ``2 i / N - 1 = -1 / N``: the filter is half a bin off centre, and for one
frame the DC bin is treated as the highest frequency (``-1``; the butterworth then passes 1.5e-5 of
it and FreeInit keeps nothing). Wan latents have odd frame counts (33 frames -> 9 latent frames). The
default ``grid="centred"`` measures ``2 (i - N // 2) / N`` from the DC bin: identical to the reference
for every even size, centred for odd sizes; ``grid="reference"`` is the literal formula. With one
frame (a single image, ``[1, C, H, W]``, or ``T = 1``) the time axis has only its DC bin, which the
centred grid passes, so FreeInit acts as 2-D (spatial) FreeInit on that frame.

**Frames** (:func:`to_video_layout`). Video latents ``[B, C, T, H, W]`` have their frames on axis 2.
For image models the batch holds the frames of one video (``[F, C, H, W]``, and ``[F, C, 1, H, W]``
latents of one picture frame per entry such as Qwen-Image's, as Dependency Noise and Temporal Momentum
Attention see them) only when the model attends across its batch (TMA, an AnimateDiff motion
module); the caller says so with ``batch_frames``. Otherwise the batch is independent images and each
is filtered on its own in 2-D: over a batch of independent images the temporal low-pass (d_t 0.25 at
4 frames keeps only the DC bin) would keep only the batch mean of the re-noised results, so every
image would start the next pass from the same low frequencies and converge to one composition.

**Coarse-to-fine sampling** (the official ``use_fast_sampling``, off by default): pass ``p`` runs
``max(1, int(N / iterations * (p + 1)))`` steps (:func:`pass_steps`), taken here from the sampler's
own N-step schedule at evenly spaced indices (:func:`pass_sigmas`); 3 iterations then cost 2x plain
sampling instead of 3x (consistent with the 2.05x the SmoothInit paper's Table 1 reports for FreeInit,
whose settings it does not state).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .sigma_space import ModelSamplingLike, SigmaLike, scaling_coefficients
# The filters and the frequency mixing live in .spectral; re-exported here (fi.low_pass_filter, ...).
from .spectral import (DEFAULT_D_S, DEFAULT_D_T, DEFAULT_ORDER, FILTERS, GRIDS, frequency_coordinates,
                       frequency_mix, from_video_layout, latent_thw, low_pass_filter, mix_along_axis, mix_latents,
                       to_video_layout)

DEFAULT_ITERATIONS = 3          # diffusers' default (the official AnimateDiff example uses 5)
# sqrt(abar_999) of SD's scaled_linear schedule is 1 / sqrt(1 + 14.6146^2) = 0.06826; rounded down so
# that SD-family models keep the reference's first-sigma rule exactly.
DEFAULT_MIN_SIGNAL = 0.068

_SEED_MIX = 0xF1EE1417D5A5C0DE  # decorrelates the fresh noise from a RandomNoise of a nearby seed


@dataclass(frozen=True)
class Settings:
    """FreeInit parameters (see :func:`validate` for ranges)."""
    iterations: int = DEFAULT_ITERATIONS
    filter_type: str = "butterworth"
    d_s: float = DEFAULT_D_S
    d_t: float = DEFAULT_D_T
    order: int = DEFAULT_ORDER
    min_signal: float = DEFAULT_MIN_SIGNAL
    grid: str = "centred"
    coarse_to_fine: bool = False


def validate(settings: Settings) -> Settings:
    """Check the parameters; return them normalised (ints, floats).

    Raises:
        ValueError naming the input: ``iterations`` < 1; ``filter_type`` not in
        :data:`FILTERS`; ``d_s`` or ``d_t`` outside (0, 1] (the reference returns an all-zero filter
        for 0, i.e. silently no FreeInit); ``order`` < 1; ``min_signal`` < 0 or not finite;
        ``grid`` not in :data:`GRIDS`.
    """
    s = settings
    try:
        iterations = int(s.iterations)
    except (TypeError, ValueError):
        raise ValueError(f"iterations must be an integer >= 1, got {s.iterations!r}.") from None
    if iterations != s.iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1 (1 = plain sampling), got {s.iterations!r}.")
    if s.filter_type not in FILTERS:
        raise ValueError(f"filter must be one of {list(FILTERS)}, got {s.filter_type!r}.")
    for name, v in (("d_s", s.d_s), ("d_t", s.d_t)):
        v = float(v)
        if not (0.0 < v <= 1.0):
            raise ValueError(f"{name} must be in (0, 1] (normalised stop frequency; the reference "
                             f"0.25), got {v}. 0 would keep no low frequency at all.")
    if int(s.order) < 1:
        raise ValueError(f"order must be an integer >= 1 (butterworth order, reference 4), got {s.order}.")
    ms = float(s.min_signal)
    if not (0.0 <= ms < float("inf")):
        raise ValueError(f"min_signal must be a finite number >= 0, got {ms}.")
    if s.grid not in GRIDS:
        raise ValueError(f"grid must be one of {list(GRIDS)}, got {s.grid!r}.")
    return Settings(iterations, s.filter_type, float(s.d_s), float(s.d_t), int(s.order), ms, s.grid,
                    bool(s.coarse_to_fine))


# --------------------------------------------------------------------------- re-noising

def renoise_ratio(model_sampling: ModelSamplingLike, sigma: SigmaLike, like: Tensor, max_denoise: bool,
                  min_signal: float = DEFAULT_MIN_SIGNAL) -> tuple[float, float]:
    """``(a / b, r)`` at the sampler's first sigma: the reference's signal ratio and the one used,
    ``r = max(a / b, min_signal)`` (see the module docstring)."""
    a, b = scaling_coefficients(model_sampling, sigma, like, max_denoise)
    ab = float(a) / float(b)
    return ab, max(ab, float(min_signal))


def renoised_unit_noise(model_sampling: ModelSamplingLike, sigma: SigmaLike, noise: Tensor, x0: Tensor,
                        latent: Tensor | None = None, max_denoise: bool = False,
                        min_signal: float = DEFAULT_MIN_SIGNAL) -> Tensor:
    """The pass result ``x0`` re-noised with the same unit ``noise``, as the sampler's unit noise.

    ``u = noise + r * x0 - (a / b) * latent`` with ``a, b`` from ``noise_scaling(sigma, ., ., max_denoise)``
    and ``r = max(a / b, min_signal)``; for ``r = a / b`` this is ``(noise_scaling(sigma, noise, x0) -
    a * latent) / b``, so the sampler's start ``noise_scaling(sigma, u, latent)`` is ``x0`` re-noised
    by the model's own forward process. Shapes ``[B, ...]``; float32 (float64 stays float64).
    """
    ab, r = renoise_ratio(model_sampling, sigma, noise, max_denoise, min_signal)
    dtype = torch.float64 if noise.dtype == torch.float64 else torch.float32
    u = noise.to(dtype) + r * x0.to(device=noise.device, dtype=dtype)
    if latent is not None and ab != 0.0:
        u = u - ab * latent.to(device=noise.device, dtype=dtype)
    return u


def reinit_noise(model_sampling: ModelSamplingLike, sigma: SigmaLike, noise: Tensor, x0: Tensor, fresh: Tensor,
                 lpf: Tensor, latent: Tensor | None = None, max_denoise: bool = False,
                 min_signal: float = DEFAULT_MIN_SIGNAL, batch_frames: bool = True) -> Tensor:
    """FreeInit's noise re-initialisation: the next pass's unit noise ``[B, ...]`` (dtype of ``noise``).

    Low frequencies of :func:`renoised_unit_noise` (``x0`` of the previous pass re-noised with the
    initial ``noise``), high frequencies of the unit noise ``fresh``; ``lpf`` from :func:`low_pass_filter`
    for :func:`latent_thw` of the latent (with the same ``batch_frames``, see :func:`to_video_layout`).
    """
    u = renoised_unit_noise(model_sampling, sigma, noise, x0, latent, max_denoise, min_signal)
    return mix_latents(u, fresh.to(device=noise.device), lpf, batch_frames).to(noise.dtype)


def pass_seed(seed: int | None, p: int) -> int:
    """Seed of the fresh noise of pass ``p`` (>= 1) for a sampler seed (None -> 0)."""
    s = 0 if seed is None else int(seed)
    return (s * 6364136223846793005 + _SEED_MIX + 1442695040888963407 * int(p)) % (2 ** 64)


def fresh_noise(shape, seed: int | None, p: int) -> Tensor:
    """Unit Gaussian noise (CPU float32) of pass ``p``, a pure function of ``(seed, p, shape)``."""
    g = torch.Generator().manual_seed(pass_seed(seed, p))
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32)


# --------------------------------------------------------------------------- the loop

def free_init(sample: Callable[[Tensor, int], Tensor], noise: Tensor, model_sampling: ModelSamplingLike,
              sigma: SigmaLike, settings: Settings = Settings(), seed: int | None = 0,
              latent: Tensor | None = None, max_denoise: bool = False,
              on_reinit: Callable[[int, Tensor], None] | None = None, batch_frames: bool = True,
              mask: Tensor | None = None) -> Tensor:
    """Run FreeInit: ``settings.iterations`` full sampling passes, returning the last pass's result.

    Args:
        sample: ``sample(unit_noise, p) -> x0`` runs one full sampling pass (pass index ``p``) from
            unit noise ``[B, ...]`` and returns the clean latent ``[B, ...]`` (the sampler's output at
            sigma 0), in the space where ``model_sampling.noise_scaling`` applies.
        noise: the initial unit noise ``eps_0`` ``[F, C, H, W]`` (image model: frames as batch) or
            ``[B, C, T, H, W]`` (video model). It is re-used to re-noise every pass's result.
        sigma: the sampler's first sigma (model units); ``max_denoise``: ComfyUI's rule for it.
        latent: the sampler's (processed) input latent ``[B, ...]`` or None (empty latent).
        seed: the sampler's seed; pass p's fresh noise is :func:`fresh_noise` ``(seed, p)``.
        on_reinit: optional ``on_reinit(p, unit_noise)`` before pass ``p >= 1`` (for tests/logging).
            Coarse-to-fine sampling is up to ``sample`` (it runs pass p over :func:`pass_sigmas`).
        batch_frames: ``True``: the batch of an image-model latent (``[F, C, H, W]``, or ``[F, C, 1, H, W]``
            of one picture frame per entry, e.g. Qwen-Image) is one video's frames and the low-pass runs
            across it; ``False``: independent images, each filtered in 2-D on its own (for a model that
            does not attend across its batch: a temporal low-pass over independent images would keep
            only their batch mean at the low temporal frequencies, pulling them to one composition).
            Video latents with ``T > 1`` are filtered per video either way.
        mask: the sampler's denoise mask (broadcastable to ``noise``; 0 = given frame, e.g. an in-place
            first image) or None; given frames keep the initial noise in every pass (:func:`keep_given`).
    Returns:
        ``sample``'s result of the last pass. With ``iterations = 1`` exactly ``sample(noise, 0)``.
    Cost: ``iterations`` x the sampler's NFE, plus two FFTs of the latent per re-initialisation.
    Raises:
        ValueError: bad settings (:func:`validate`), or a latent that is not 4-D/5-D.
    """
    settings = validate(settings)

    def make_reinit() -> Callable[[int, Tensor], Tensor]:
        lpf = low_pass_filter(latent_thw(noise.shape, batch_frames), settings.filter_type, settings.d_s,
                              settings.d_t, settings.order, settings.grid)

        def reinit(p: int, x0: Tensor) -> Tensor:
            fresh = fresh_noise(noise.shape, seed, p)
            start = reinit_noise(model_sampling, sigma, noise, x0, fresh, lpf, latent, max_denoise,
                                 settings.min_signal, batch_frames)
            return keep_given(start, noise, mask)
        return reinit

    return run_passes(sample, noise, settings.iterations, make_reinit, lambda s: s, on_reinit)


def run_passes(sample: Callable[[Tensor, int], Tensor], noise, iterations: int,
               make_reinit: Callable[[], Callable[[int, Tensor], object]], pack: Callable[[object], Tensor],
               on_reinit: Callable[[int, object], None] | None = None) -> Tensor:
    """FreeInit's pass loop, shared by :func:`free_init` and :func:`free_init_streams`: pass 0 samples
    ``pack(noise)``; every later pass ``p`` samples ``pack(reinit(p, x0))`` of the previous pass's result
    ``x0`` (``on_reinit(p, start)`` sees the start first), ``reinit = make_reinit()`` made once, only when a
    second pass runs (its filter is not built for ``iterations = 1``). Returns the last pass's result."""
    x0 = sample(pack(noise), 0)
    reinit = make_reinit() if iterations > 1 else None
    for p in range(1, iterations):
        start = reinit(p, x0)
        if on_reinit is not None:
            on_reinit(p, start)
        x0 = sample(pack(start), p)
    return x0


# --------------------------------------------------------------------------- audio+video (several streams)

AUDIO_TREATMENTS = ("keep initial noise", "low-pass along time")
DEFAULT_AUDIO_TREATMENT = "keep initial noise"


def mix_along_time(low: Tensor, high: Tensor, time_axis: int, settings: Settings) -> Tensor:
    """FreeInit's mix for a stream without a picture grid (audio): low frequencies of ``low``, high of
    ``high`` along axis ``time_axis`` only, with the 1-D form of the same filter (:func:`low_pass_filter`
    of ``(T, 1, 1)``: every other axis has only its DC bin, so the cut-off is ``settings.d_t``). Shape kept.
    :func:`.spectral.mix_along_axis` with the filter of ``settings``."""
    return mix_along_axis(low, high, time_axis, settings.filter_type, settings.d_s, settings.d_t, settings.order,
                          settings.grid)


def keep_given(start: Tensor, noise: Tensor, mask: Tensor | None) -> Tensor:
    """``start`` where ``mask`` is 1 (generated), the initial ``noise`` where it is 0 (given frames of a
    noise mask / in-place image): a given frame is re-noised in every pass exactly as in the first, so
    it stays the image's. ``mask`` broadcastable to ``start`` (values in [0, 1]) or None."""
    if mask is None:
        return start
    m = mask.to(device=start.device, dtype=start.dtype)
    return noise.to(start.dtype) + m * (start - noise.to(start.dtype))


def free_init_streams(sample: Callable[[Tensor, int], Tensor], noise: list, model_sampling: ModelSamplingLike,
                      sigma: SigmaLike, settings: Settings, pack: Callable[[list], Tensor],
                      unpack: Callable[[Tensor], list], audio_axes: list, seed: int | None = 0,
                      latent: list | None = None, max_denoise: bool = False, masks: list | None = None,
                      audio_treatment: str = DEFAULT_AUDIO_TREATMENT,
                      on_reinit: Callable[[int, list], None] | None = None, batch_frames: bool = False) -> Tensor:
    """FreeInit on an audio+video latent sampled packed (ComfyUI's nested latents: MiniMax H3, LTX-2).

    Args:
        sample: ``sample(packed_unit_noise, p) -> packed x0`` (one full sampling pass, sampler space).
        noise: the initial unit noise of each stream: ``[video [B, C, T, H, W], audio [...], ...]``.
        pack / unpack: the streams <-> the packed latent (ComfyUI's ``pack_latents`` / ``unpack_latents``).
        audio_axes: for each stream after the first, its time axis.
        latent, masks: each stream's processed input latent / denoise mask (or None).
        audio_treatment: ``"keep initial noise"``: every pass starts the audio streams from their own
            initial noise (the audio follows the refined video through the joint model); ``"low-pass along
            time"``: the audio result is re-noised with its initial noise and its low frequencies along time
            (cut-off ``d_t``) are kept, fresh noise above (:func:`mix_along_time`).
        batch_frames: as in :func:`free_init`, for the video stream. The joint audio+video models do not
            attend across their batch, so the default ``False`` filters each video (and each one-frame
            video of a batch) on its own.
    The video stream gets FreeInit's 3-D mix (:func:`reinit_noise`). Re-noising is ComfyUI's
    ``noise_scaling`` in the sampler's space: for MiniMax H3 the audio stream there is the carried
    variable (``audio_scale`` x the audio latent on the video schedule, ``ModelSamplingAV``), so its
    re-noising is the model's own forward process. Given frames (mask 0) keep their initial noise
    (:func:`keep_given`). Returns the last pass's packed x0; ``iterations`` x the sampler's NFE.
    Raises ValueError: unknown ``audio_treatment``.
    """
    if audio_treatment not in AUDIO_TREATMENTS:
        raise ValueError(f"audio must be one of {list(AUDIO_TREATMENTS)}, got {audio_treatment!r}")
    settings = validate(settings)
    latent = latent if latent is not None else [None] * len(noise)
    masks = masks if masks is not None else [None] * len(noise)

    def make_reinit() -> Callable[[int, Tensor], list]:
        lpf = low_pass_filter(latent_thw(noise[0].shape, batch_frames), settings.filter_type, settings.d_s,
                              settings.d_t, settings.order, settings.grid)

        def reinit(p: int, x0: Tensor) -> list:
            fresh = unpack(fresh_noise(x0.shape, seed, p))     # x0 is packed like the noise: the same shape
            x0s = unpack(x0)
            starts = [reinit_noise(model_sampling, sigma, noise[0], x0s[0], fresh[0], lpf, latent[0], max_denoise,
                                   settings.min_signal, batch_frames)]
            for i in range(1, len(noise)):
                if audio_treatment == "keep initial noise":
                    starts.append(noise[i])
                    continue
                u = renoised_unit_noise(model_sampling, sigma, noise[i], x0s[i], latent[i], max_denoise,
                                        settings.min_signal)
                starts.append(mix_along_time(u, fresh[i], audio_axes[i - 1], settings).to(noise[i].dtype))
            return [keep_given(s, n, m) for s, n, m in zip(starts, noise, masks)]
        return reinit

    return run_passes(sample, noise, settings.iterations, make_reinit, pack, on_reinit)


def pass_steps(steps: int, p: int, iterations: int, coarse_to_fine: bool) -> int:
    """Sampling steps of pass ``p`` (0-based): ``steps``, or with coarse-to-fine sampling (FreeInit's
    "fast sampling", diffusers ``use_fast_sampling``) ``max(1, int(steps / iterations * (p + 1)))``."""
    if not coarse_to_fine:
        return int(steps)
    return max(1, int(int(steps) / int(iterations) * (p + 1)))


def pass_sigmas(sigmas: Tensor, p: int, iterations: int, coarse_to_fine: bool) -> Tensor:
    """The schedule of pass ``p``: ``sigmas`` ``[N + 1]`` itself, or for coarse-to-fine sampling
    :func:`pass_steps` + 1 of its entries at evenly spaced indices (same first and last sigma; for
    ComfyUI's simple/normal schedules close to the schedule of that many steps)."""
    n = int(sigmas.shape[-1]) - 1
    k = pass_steps(n, p, iterations, coarse_to_fine)
    if k >= n:
        return sigmas
    idx = torch.linspace(0, n, k + 1, dtype=torch.float64).round().long().to(sigmas.device)
    return sigmas[idx]


def nfe(iterations: int, sampling_nfe: int, steps: int | None = None, coarse_to_fine: bool = False) -> int:
    """Model calls of FreeInit: ``iterations`` x those of one sampling pass (``sampling_nfe`` for
    ``steps`` steps); with coarse-to-fine sampling the sum over the passes' shorter schedules
    (3 iterations: 2 x plain)."""
    if not coarse_to_fine:
        return int(iterations) * int(sampling_nfe)
    per_step = int(sampling_nfe) / int(steps)
    return int(round(per_step * sum(pass_steps(int(steps), p, iterations, True) for p in range(int(iterations)))))


__all__ = ["FILTERS", "GRIDS", "Settings", "validate", "frequency_coordinates", "low_pass_filter",
           "to_video_layout", "from_video_layout", "latent_thw", "frequency_mix", "mix_latents", "renoise_ratio",
           "renoised_unit_noise", "reinit_noise", "pass_seed", "fresh_noise", "free_init", "run_passes",
           "AUDIO_TREATMENTS", "DEFAULT_AUDIO_TREATMENT", "mix_along_time", "keep_given", "free_init_streams", "pass_steps", "pass_sigmas", "nfe"]

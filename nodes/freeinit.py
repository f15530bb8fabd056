"""Nodes: FreeInit for every model family -- a MODEL patch for the plain KSampler graph and a SAMPLER
wrapper for SamplerCustomAdvanced.

Thin adapters over :mod:`..samplers.freeinit` (pure torch); every ComfyUI call goes through
:mod:`.comfy_bridge`. Method: FreeInit (Wu et al. 2023), official code TianxingWu/FreeInit and
diffusers ``free_init_utils.py``; ALGORITHMS.md section 4. The sigma-space conventions (unit noise,
``noise_scaling``, flow models' signal floor, the centred frequency grid) are in the core module's
docstring.

Both forms are the same object: a ``MultiPassSampler`` that runs the chosen sampler ``iterations``
times inside one ComfyUI sampling. The patch ("FreeInit (KSampler)") wraps every sampler node's
SAMPLER with it (an OUTER_SAMPLE wrapper), so KSampler with the patched model and
SamplerCustomAdvanced with "FreeInit Sampler" give the same video for the same seed. It sits below
every noise patch, so FreeInit's "same initial noise" is the noise after Dependency Noise (KSampler),
SmoothInit (KSampler) or any NOISE node, in whatever order the patches were applied.
"""
from __future__ import annotations

import torch

from ..samplers import freeinit as fi
from . import comfy_bridge as bridge

PATCH_CATEGORY = "training_free_video/FreeInit"
SAMPLER_CATEGORY = "training_free_video/FreeInit"
WRAPPER_KEY = "training_free_video.freeinit"
TAG = "freeinit"

_FRAMES_NOTE = ("The 3-D FFT runs over frames, height and width: frames are the batch for image models "
                "([F, C, H, W], e.g. Empty Latent Image batch_size = frames; independent images in one batch would "
                "be coupled, so use batch 1 for images) and axis 2 for video latents ([B, C, T, H, W]: Wan, Hunyuan, "
                "LTXV). One frame: the time axis has only its DC bin, which passes, so FreeInit is 2-D (spatial).")
_COST_NOTE = ("Cost: iterations x the sampler's model calls (3 x at the default; the FreeInit paper's 5 iterations "
              "are 5 x; with coarse_to_fine about (iterations + 1) / 2 x: 2 x for 3), plus two FFTs of the latent per "
              "pass. One progress bar over all passes, with a preview of each pass; Cancel stops between any two steps.")
_SKIP_NOTE = ("Noise that is all zeros (KSamplerAdvanced add_noise disabled, second stages) and iterations = 1 run "
              "the sampler once, unchanged.")


def _inputs() -> dict:
    return {
        "iterations": ("INT", {"default": fi.DEFAULT_ITERATIONS, "min": 1, "max": 20,
                               "tooltip": "Full sampling passes in all (1 = plain sampling). diffusers' default 3, "
                                          "the FreeInit paper 5. Each pass costs one whole sampling."}),
        "filter": (list(fi.FILTERS), {"default": "butterworth",
                                      "tooltip": "Low-pass filter deciding which frequencies come from the previous "
                                                 "result: butterworth (paper default, order n), gaussian (softer), "
                                                 "ideal (hard cut, the reference's wider radius sqrt(2 d_s)), box "
                                                 "(a block of bins around DC)."}),
        "d_s": ("FLOAT", {"default": fi.DEFAULT_D_S, "min": 0.01, "max": 1.0, "step": 0.01,
                          "tooltip": "Spatial stop frequency in (0, 1] (normalised; 1 = Nyquist). Larger keeps more "
                                     "of the previous result's spatial layout. Paper 0.25."}),
        "d_t": ("FLOAT", {"default": fi.DEFAULT_D_T, "min": 0.01, "max": 1.0, "step": 0.01,
                          "tooltip": "Temporal stop frequency in (0, 1] across frames. Larger keeps more of the "
                                     "previous result's motion. Paper 0.25."}),
        "order": ("INT", {"default": fi.DEFAULT_ORDER, "min": 1, "max": 32,
                          "tooltip": "Butterworth order n (butterworth only): larger -> closer to ideal, smaller -> "
                                     "closer to gaussian. Paper 4."}),
        "min_signal": ("FLOAT", {"default": fi.DEFAULT_MIN_SIGNAL, "min": 0.0, "max": 10.0, "step": 0.001,
                                 "tooltip": "Floor on how much of the previous result survives re-noising (a/b, the "
                                            "square root of the SNR). SD-family models keep the reference rule (0.068 "
                                            "at their first sigma); flow models (Wan, Hunyuan, LTXV) start at sigma "
                                            "1 = pure noise, which would discard the result, so they get this floor. "
                                            "0 = the literal first-sigma rule."}),
        "coarse_to_fine": ("BOOLEAN", {"default": False,
                                       "tooltip": "FreeInit's fast sampling: pass p uses steps * (p + 1) / iterations "
                                                  "of your sampler's sigmas (evenly spaced, same first and last), so "
                                                  "3 iterations cost 2x plain instead of 3x; may lower quality."}),
    }


def settings_from_inputs(node: str, iterations, filter, d_s, d_t, order, min_signal,  # noqa: A002
                         coarse_to_fine=False) -> fi.Settings:
    """Validated :class:`samplers.freeinit.Settings`; ValueError naming ``node`` and the input."""
    return fi.validate(node, fi.Settings(iterations=iterations, filter_type=filter, d_s=d_s, d_t=d_t, order=order,
                                         min_signal=min_signal, coarse_to_fine=bool(coarse_to_fine)))


def make_run(node: str, settings: fi.Settings):
    """The body of the FreeInit SAMPLER: ``run(call: bridge.SamplerPasses) -> samples``.

    Raises (ValueError naming the node): a latent that is not 4-D/5-D; a schedule that stops above
    sigma 0 (KSamplerAdvanced return_with_leftover_noise, split sigmas) -- its output is not a
    finished sample to re-noise.
    """
    def run(call: bridge.SamplerPasses) -> torch.Tensor:
        noise, sigmas = call.noise, call.sigmas
        if (settings.iterations == 1 or noise is None or sigmas.shape[-1] < 2
                or not bool(torch.count_nonzero(noise))):
            return call.run_pass(noise, call.callback)
        if noise.ndim not in (4, 5):
            raise ValueError(f"{node}: the latent has shape {tuple(noise.shape)}; FreeInit needs an image-model latent "
                             f"[frames, C, H, W] or a video latent [B, C, T, H, W]. Connect an image or video latent "
                             f"(e.g. Empty Latent Image / EmptyHunyuanLatentVideo) to the sampler, or remove FreeInit.")
        if float(sigmas[-1]) > 0:
            raise ValueError(f"{node}: the sampler stops at sigma {float(sigmas[-1]):.4g} > 0 (KSamplerAdvanced "
                             f"return_with_leftover_noise / end_at_step, or split SIGMAS), so a pass does not end in a "
                             f"finished sample to re-noise. Use FreeInit on a sampler that denoises to the end, or "
                             f"remove it from this stage.")
        steps = int(sigmas.shape[-1]) - 1
        k, c2f = settings.iterations, settings.coarse_to_fine
        per_pass = [fi.pass_steps(steps, p, k, c2f) for p in range(k)]
        offsets = [sum(per_pass[:p]) for p in range(k)]
        total = sum(per_pass)
        callback = call.callback

        def sample(start: torch.Tensor, p: int) -> torch.Tensor:
            bridge.throw_if_interrupted()

            def pass_callback(step, x0, x, total_steps):
                bridge.throw_if_interrupted()
                if callback is not None:
                    callback(offsets[p] + int(step), x0, x, total)

            return call.run_pass(start, pass_callback, fi.pass_sigmas(sigmas, p, k, c2f))

        out = fi.free_init(sample, noise, call.model_sampling, sigmas[0], settings, seed=call.seed,
                           latent=call.latent_image, max_denoise=call.max_denoise)
        bridge.throw_if_interrupted()
        return out

    return run


def _check_not_nested(node: str, sampler) -> None:
    if isinstance(sampler, bridge.MultiPassSampler) and sampler.tag == TAG:
        raise ValueError(f"{node}: FreeInit is applied twice (a FreeInit-patched MODEL with a FreeInit Sampler, or the "
                         f"FreeInit patch twice), which would multiply the passes. Remove one of them.")


def wrap_sampler(node: str, sampler, settings: fi.Settings) -> bridge.MultiPassSampler:
    """The FreeInit SAMPLER around ``sampler`` (shared by both nodes)."""
    _check_not_nested(node, sampler)
    return bridge.MultiPassSampler(sampler, make_run(node, settings), TAG)


class FreeInitModelPatch:
    NODE_NAME = "FreeInit (KSampler)"

    @classmethod
    def INPUT_TYPES(cls):
        req = {"model": ("MODEL", {"tooltip": "The model to patch: every sampler node using the patched model "
                                              "(KSampler, KSamplerAdvanced, SamplerCustom[Advanced]) runs FreeInit. "
                                              "The input MODEL is not modified."})}
        req.update(_inputs())
        return {"required": req}

    RETURN_TYPES = ("MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("A patched copy of the model: its samplers sample `iterations` times, each pass starting from "
                       "the previous result's low frequencies (re-noised with the same initial noise) plus fresh high "
                       "frequencies.",)
    FUNCTION = "patch"
    CATEGORY = PATCH_CATEGORY
    DESCRIPTION = ("FreeInit (Wu et al. 2023) for the plain KSampler graph, on every model family (SD1.x/SD2.x/SDXL/"
                   "AnimateDiff, Wan, Hunyuan, LTXV): after each full sampling pass the result is re-noised to the "
                   "first sigma with the same initial noise, its low spatio-temporal frequencies are kept and the high "
                   "ones come from fresh noise (seeded by the sampler's seed and the pass), and sampling runs again. "
                   "Same video as SamplerCustomAdvanced with FreeInit Sampler for the same seed. The initial noise is "
                   "the one after Dependency Noise / SmoothInit patches, in any order. " + _FRAMES_NOTE + " "
                   + _SKIP_NOTE + " " + _COST_NOTE)

    def patch(self, model, iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine=False):  # noqa: A002
        node = self.NODE_NAME
        settings = settings_from_inputs(node, iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine)
        return (bridge.add_outer_sampler_wrapper(model, WRAPPER_KEY, lambda s: wrap_sampler(node, s, settings)),)


class FreeInitSampler:
    NODE_NAME = "FreeInit Sampler"

    @classmethod
    def INPUT_TYPES(cls):
        req = {"sampler": ("SAMPLER", {"tooltip": "The sampler to run in every FreeInit pass (KSamplerSelect or any "
                                                  "SAMPLER node). Each pass must denoise to sigma 0."})}
        req.update(_inputs())
        return {"required": req}

    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("A SAMPLER for SamplerCustomAdvanced that runs the input sampler `iterations` times with "
                       "FreeInit's noise re-initialisation between passes.",)
    FUNCTION = "get_sampler"
    CATEGORY = SAMPLER_CATEGORY
    DESCRIPTION = ("FreeInit (Wu et al. 2023) as a SAMPLER wrapper for SamplerCustomAdvanced: works with any NOISE "
                   "(RandomNoise, Dependency Noise, SmoothInit Noise: FreeInit then starts from that noise and re-noises "
                   "with it), any GUIDER and SIGMAS. The fresh high-frequency noise is seeded by the NOISE's seed and "
                   "the pass. Same video as FreeInit (KSampler) for the same seed. " + _FRAMES_NOTE + " "
                   + _SKIP_NOTE + " " + _COST_NOTE)

    def get_sampler(self, sampler, iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine=False):  # noqa: A002
        node = self.NODE_NAME
        settings = settings_from_inputs(node, iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine)
        return (wrap_sampler(node, sampler, settings),)


NODE_CLASS_MAPPINGS = {
    "TFVFreeInitModelPatch": FreeInitModelPatch,
    "TFVFreeInitSampler": FreeInitSampler,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "TFVFreeInitModelPatch": "FreeInit (KSampler)",
    "TFVFreeInitSampler": "FreeInit Sampler",
}

"""Nodes: FreeInit for every model family -- a MODEL patch for the plain KSampler graph and a SAMPLER
wrapper for SamplerCustomAdvanced.

Thin adapters over :mod:`..samplers.freeinit` (pure torch); every ComfyUI call goes through
:mod:`.comfy_bridge`. Method: FreeInit (Wu et al. 2023), official code TianxingWu/FreeInit and
diffusers ``free_init_utils.py``; docs/algorithms.md section 4.1. The sigma-space conventions (unit noise,
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
from . import registry
from .errors import NodeError, naming
from .zs2_long import STATE_KEY as _LONG_VIDEO_CHUNK

WRAPPER_KEY = "training_free_video.freeinit"
TAG = "freeinit"

_FRAMES_NOTE = ("The 3-D FFT runs over frames, height and width: frames are axis 2 for video latents ([B, C, T, H, "
                "W]: Wan, Hunyuan, LTXV) and the batch for image models ([F, C, H, W], e.g. Empty Latent Image "
                "batch_size = frames, or Qwen-Image's [F, C, 1, H, W]) when the model attends across its batch "
                "(Temporal Momentum Attention, an AnimateDiff motion model). Without such a model the batch is "
                "independent images and each gets 2-D (spatial) FreeInit on its own, the same as a batch-1 run "
                "(a temporal low-pass would pull independent images to one composition). One frame: the time axis "
                "has only its DC bin, which passes, so FreeInit is 2-D (spatial).")
_COST_NOTE = ("Cost: iterations x the sampler's model calls (3 x at the default; the FreeInit paper's 5 iterations "
              "are 5 x; with coarse_to_fine about (iterations + 1) / 2 x: 2 x for 3), plus two FFTs of the latent per "
              "pass. NFE = iterations x steps x calls per step (2 with CFG, 1 at CFG 1): a 4-step distilled model at "
              "CFG 1 (Wan 2.2 lightx2v LoRA) costs 3 x 4 x 1 = 12 model calls instead of 4 at the default, 1 + 2 + 4 "
              "= 7 with coarse_to_fine. One progress bar over all passes, with a preview of each pass; Cancel stops "
              "between any two steps.")
_SKIP_NOTE = ("Noise that is all zeros (KSamplerAdvanced add_noise disabled, second stages) and iterations = 1 run "
              "the sampler once, unchanged.")


INPUTS = {  # the FreeInit settings, shared by the three nodes
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
                                 "previous result's motion. Paper 0.25. An image batch counts as frames only "
                                 "when the model attends across it (Temporal Momentum Attention, AnimateDiff); "
                                 "otherwise each image gets 2-D FreeInit on its own and d_t is unused."}),
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


def settings_from_inputs(iterations, filter, d_s, d_t, order, min_signal,  # noqa: A002
                         coarse_to_fine=False) -> fi.Settings:
    """Validated :class:`samplers.freeinit.Settings` from the nodes' inputs; ValueError naming the input."""
    return fi.validate(fi.Settings(iterations=iterations, filter_type=filter, d_s=d_s, d_t=d_t, order=order,
                                   min_signal=min_signal, coarse_to_fine=bool(coarse_to_fine)))


_AUDIO_NOTE = ("Audio+video latents (MiniMax H3, LTX-2: ComfyUI samples both streams packed in one latent): the "
               "video stream gets FreeInit's 3-D mix; the audio stream follows the audio input. A noise mask "
               "(in-place first image: LTXVImgToVideoInplace, Wan22ImageToVideoLatent, Set Latent Noise Mask) keeps "
               "its given frames' initial noise in every pass, so they stay the image's.")


AUDIO_INPUT = {"audio": (list(fi.AUDIO_TREATMENTS), {
    "default": fi.DEFAULT_AUDIO_TREATMENT,
    "tooltip": "Audio+video models only (MiniMax H3, LTX-2). keep initial noise (default): every pass starts the "
               "audio from its own initial noise and the audio follows the refined video through the joint "
               "model; low-pass along time: the audio result is re-noised and its low frequencies along audio "
               "time (cut-off d_t) are kept, as FreeInit does for video. Unused for video-only latents."})}


def make_run(node: str, settings: fi.Settings, audio: str = fi.DEFAULT_AUDIO_TREATMENT):
    """The body of the FreeInit SAMPLER: ``run(call: bridge.SamplerPasses) -> samples``.

    A packed audio+video latent runs :func:`samplers.freeinit.free_init_streams` (streams unpacked with
    ComfyUI's own helpers, the audio per ``audio``); a denoise mask keeps its given frames' initial noise.

    Raises (ValueError naming the node): a latent that is not 4-D/5-D; a schedule that stops above
    sigma 0 (KSamplerAdvanced return_with_leftover_noise, split sigmas) -- its output is not a
    finished sample to re-noise.
    """
    def run(call: bridge.SamplerPasses) -> torch.Tensor:
        noise, sigmas = call.noise, call.sigmas
        if (settings.iterations == 1 or noise is None or sigmas.shape[-1] < 2
                or not bool(torch.count_nonzero(noise))):
            return call.run_pass(noise, call.callback)
        shapes = bridge.packed_latent_shapes(call.model_wrap)
        if shapes is None:
            _check_latent_rank(node, noise)
        if float(sigmas[-1]) > 0:
            raise NodeError(node, f"the sampler stops at sigma {float(sigmas[-1]):.4g} > 0 (KSamplerAdvanced "
                                  f"return_with_leftover_noise / end_at_step, or split SIGMAS), so a pass does not end in a "
                                  f"finished sample to re-noise. Use FreeInit on a sampler that denoises to the end; for two "
                                  f"samplers in a row (Wan 2.2 14B high-noise / low-noise experts) use FreeInit (KSampler, two "
                                  f"experts) on both models instead.")
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

        # an image batch is one video's frames only when the model attends across it (TMA, a motion
        # module); otherwise independent images, each with 2-D FreeInit (samplers/freeinit.py "Frames")
        if shapes is not None:
            def unpack(x):
                return bridge.unpack_streams(x, shapes)
            out = fi.free_init_streams(sample, unpack(noise), call.model_sampling, sigmas[0], settings,
                                       bridge.pack_streams, unpack, bridge.audio_time_axes(call.model_wrap, shapes),
                                       seed=call.seed, latent=unpack(call.latent_image), max_denoise=call.max_denoise,
                                       masks=unpack(call.denoise_mask), audio_treatment=audio,
                                       batch_frames=call.attends_across_batch)
        else:
            out = fi.free_init(sample, noise, call.model_sampling, sigmas[0], settings, seed=call.seed,
                               latent=call.latent_image, max_denoise=call.max_denoise,
                               batch_frames=call.attends_across_batch, mask=call.denoise_mask)
        bridge.throw_if_interrupted()
        return out

    return run


def _check_audio(audio: str) -> None:
    if audio not in fi.AUDIO_TREATMENTS:
        raise ValueError(f"audio is {audio!r}; use one of {list(fi.AUDIO_TREATMENTS)}.")


def _check_not_nested(node: str, sampler) -> None:
    if isinstance(sampler, bridge.MultiPassSampler) and sampler.tag == TAG:
        raise NodeError(node, f"FreeInit is applied twice (a FreeInit-patched MODEL with a FreeInit Sampler, or the "
                              f"FreeInit patch twice), which would multiply the passes. Remove one of them.")


def wrap_sampler(node: str, sampler, settings: fi.Settings,
                 audio: str = fi.DEFAULT_AUDIO_TREATMENT) -> bridge.MultiPassSampler:
    """The FreeInit SAMPLER around ``sampler`` (shared by both nodes)."""
    _check_not_nested(node, sampler)
    return bridge.MultiPassSampler(sampler, make_run(node, settings, audio), TAG)


@registry.node(registry.Spec(
    id="TFVFreeInitModelPatch", display_name="FreeInit (KSampler)", method="FreeInit", function="patch",
    inputs={"model": ("MODEL", {"tooltip": "The model to patch: every sampler node using the patched model "
                                       "(KSampler, KSamplerAdvanced, SamplerCustom[Advanced]) runs FreeInit. "
                                       "The input MODEL is not modified."}), **INPUTS},
    optional=AUDIO_INPUT,
    outputs=(("MODEL", "model",
              "A patched copy of the model: its samplers sample `iterations` times, each pass starting from the "
              "previous result's low frequencies (re-noised with the same initial noise) plus fresh high "
              "frequencies."),),
    description=("FreeInit (Wu et al. 2023) for the plain KSampler graph, on every model family (SD1.x/SD2.x/SDXL/"
                 "AnimateDiff, Wan, Hunyuan, LTXV): after each full sampling pass the result is re-noised to the "
                 "first sigma with the same initial noise, its low spatio-temporal frequencies are kept and the high "
                 "ones come from fresh noise (seeded by the sampler's seed and the pass), and sampling runs again. "
                 "Same video as SamplerCustomAdvanced with FreeInit Sampler for the same seed. The initial noise is "
                 "the one after Dependency Noise / SmoothInit patches, in any order. " + _FRAMES_NOTE + " "
                 + _AUDIO_NOTE + " " + _SKIP_NOTE + " " + _COST_NOTE),
    aliases=registry.FREEINIT_TERMS + ("freeinit ksampler", "model patch") + registry.VIDEO_TERMS))
class FreeInitModelPatch:
    def patch(self, model, iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine=False,  # noqa: A002
              audio=fi.DEFAULT_AUDIO_TREATMENT):
        node = self.NODE_NAME
        settings = settings_from_inputs(iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine)
        _check_audio(audio)
        return (bridge.add_outer_sampler_wrapper(model, WRAPPER_KEY,
                                                 lambda s: wrap_sampler(node, s, settings, audio)),)


@registry.node(registry.Spec(
    id="TFVFreeInitSampler", display_name="FreeInit Sampler", method="FreeInit", function="get_sampler",
    inputs={"sampler": ("SAMPLER", {"tooltip": "The sampler to run in every FreeInit pass (KSamplerSelect or any "
                                           "SAMPLER node). Each pass must denoise to sigma 0."}), **INPUTS},
    optional=AUDIO_INPUT,
    outputs=(("SAMPLER", "sampler",
              "A SAMPLER for SamplerCustomAdvanced that runs the input sampler `iterations` times with FreeInit's"
              " noise re-initialisation between passes."),),
    description=("FreeInit (Wu et al. 2023) as a SAMPLER wrapper for SamplerCustomAdvanced: works with any NOISE "
                 "(RandomNoise, Dependency Noise, SmoothInit Noise: FreeInit then starts from that noise and re-noises "
                 "with it), any GUIDER and SIGMAS. The fresh high-frequency noise is seeded by the NOISE's seed and "
                 "the pass. Same video as FreeInit (KSampler) for the same seed. " + _FRAMES_NOTE + " "
                 + _AUDIO_NOTE + " " + _SKIP_NOTE + " " + _COST_NOTE),
    aliases=registry.FREEINIT_TERMS + ("freeinit sampler", "sampler wrapper", "custom sampler") + registry.VIDEO_TERMS))
class FreeInitSampler:
    def get_sampler(self, sampler, iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine=False,  # noqa: A002
                    audio=fi.DEFAULT_AUDIO_TREATMENT):
        node = self.NODE_NAME
        settings = settings_from_inputs(iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine)
        _check_audio(audio)
        return (wrap_sampler(node, sampler, settings, audio),)


# --------------------------------------------------------------------------- two experts (Wan 2.2 14B)

_MAX_RECORDS = 4  # first-stage records kept per node (several sampler pairs may share its models), on the intermediate device


def _check_latent_rank(node: str, noise: torch.Tensor) -> None:
    """Inside sampling: the latent must be an image-model or a video latent (one message for every form)."""
    if noise.ndim not in (4, 5):
        raise NodeError(node, f"the latent has shape {tuple(noise.shape)}; FreeInit needs an image-model latent "
                              f"[frames, C, H, W] or a video latent [B, C, T, H, W]. Connect an image or video latent "
                              f"(e.g. Empty Latent Image / EmptyHunyuanLatentVideo) to the sampler, or remove "
                              f"FreeInit.")


def _refuse_chunks(node: str, which: str, call: bridge.SamplerPasses) -> None:
    """ValueError when ZS^2 Long Video (chunks) runs this sampler chunk by chunk (its chunk state is in
    the sampler's transformer_options): a first stage re-run would need every chunk's seam at every
    step of the pass, so the two-expert FreeInit does not support it."""
    if bridge.transformer_option(call.extra_args.get("model_options", {}), _LONG_VIDEO_CHUNK) is None:
        return
    raise NodeError(node, f"{which}: ZS^2 Long Video (chunks) samples this latent chunk by chunk, and the "
                          f"two-expert FreeInit cannot run the first sampler's chunks again (each chunk continues the previous "
                          f"chunk's seam frame at every step). Remove ZS^2 Long Video (chunks) from the models, set its "
                          f"chunk_frames to at least the latent's frame count, or sample with one model and FreeInit "
                          f"(KSampler), which runs inside each chunk.")


TWO_EXPERTS_SUPPORTED = ("The two-expert FreeInit supports image-model and video latents of two-sampler graphs "
                         "(Wan 2.2 14B); for an audio+video model with one sampler use FreeInit (KSampler) or "
                         "FreeInit Sampler, which support audio+video latents.")


def first_stage_sampler(node: str, sampler, settings: fi.Settings, outer: bridge.OuterCall) -> bridge.MultiPassSampler:
    """The SAMPLER of the high-noise (first) stage: runs pass 0 of that stage and records it in
    ``outer.extras["stage"]`` (:class:`comfy_bridge.FirstStage`) for the second stage. A sampler that
    denoises to sigma 0 is a whole sampling: plain one-model FreeInit. A noise mask (Wan22ImageToVideoLatent's
    start image, Set Latent Noise Mask) is recorded: every re-run keeps it and the given frames keep their
    initial noise. Raises (ValueError naming the node): an audio+video latent; a latent that is not 4-D/5-D;
    ZS^2 Long Video (chunks) sampling it chunk by chunk."""
    _check_not_nested(node, sampler)
    k, c2f = settings.iterations, settings.coarse_to_fine

    def run(call: bridge.SamplerPasses) -> torch.Tensor:
        noise, sigmas = call.noise, call.sigmas
        if k == 1 or noise is None or sigmas.shape[-1] < 2 or not bool(torch.count_nonzero(noise)):
            return call.run_pass(noise, call.callback)
        if float(sigmas[-1]) == 0:
            return make_run(node, settings)(call)
        with naming(node):
            bridge.refuse_packed_latent("high_noise_model: the sampler's latent",
                                        bridge.packed_latent_shapes(call.model_wrap), TWO_EXPERTS_SUPPORTED)
        _check_latent_rank(node, noise)
        _refuse_chunks(node, "high_noise_model", call)
        outer.extras["stage"] = bridge.first_stage(call, outer)
        return call.run_pass(noise, call.callback, fi.pass_sigmas(sigmas, 0, k, c2f))

    return bridge.MultiPassSampler(sampler, run, TAG)


def second_stage_sampler(node: str, sampler, settings: fi.Settings, outer: bridge.OuterCall,
                         records: list) -> bridge.MultiPassSampler:
    """The SAMPLER of the low-noise (second) stage: finishes pass 0 from the first stage's output, then
    for every further pass re-noises the result with the first stage's initial noise (FreeInit's mix,
    docs/algorithms.md section 4.1), re-runs the first stage on the first model
    (:func:`comfy_bridge.rerun_first_stage`) and this stage on its output. Returns the last pass.

    Raises (ValueError naming the node and input): a sampler that adds noise or stops above sigma 0;
    an input latent that is not the output of a first stage of the same node; a start sigma that is
    not the first stage's last sigma; ZS^2 Long Video (chunks) sampling either stage chunk by chunk;
    a latent whose shape differs from the first stage's.
    """
    _check_not_nested(node, sampler)
    k, c2f = settings.iterations, settings.coarse_to_fine

    def run(call: bridge.SamplerPasses) -> torch.Tensor:
        noise, sigmas = call.noise, call.sigmas
        if k == 1 or sigmas.shape[-1] < 2:
            return call.run_pass(noise, call.callback)
        if noise is not None and bool(torch.count_nonzero(noise)):
            raise NodeError(node, f"low_noise_model: its sampler adds noise (KSamplerAdvanced add_noise enable, or "
                                  f"a NOISE other than Disable Noise), so it is not the second stage of a two-expert graph. "
                                  f"Set add_noise to disable and start_at_step to the first KSamplerAdvanced's end_at_step "
                                  f"(the stock Wan 2.2 layout); with one model use FreeInit (KSampler).")
        if float(sigmas[-1]) > 0:
            raise NodeError(node, f"low_noise_model: its sampler stops at sigma {float(sigmas[-1]):.4g} > 0; the "
                                  f"second stage must denoise to the end (end_at_step >= steps, return_with_leftover_noise "
                                  f"disable).")
        with naming(node):
            bridge.refuse_packed_latent("low_noise_model: the sampler's latent",
                                        bridge.packed_latent_shapes(call.model_wrap), TWO_EXPERTS_SUPPORTED)
        _refuse_chunks(node, "low_noise_model", call)
        stage = next((r for r in records if bridge.is_output_of(r, outer.latent_image)), None)
        if stage is None:
            raise NodeError(node, f"low_noise_model: the latent of its sampler is not the output of a sampler that "
                                  f"used this node's high_noise_model output, so the high-noise stage cannot be run again. "
                                  f"Connect high_noise_model to the first KSamplerAdvanced (add_noise enable, "
                                  f"return_with_leftover_noise enable) and its LATENT straight to this sampler's "
                                  f"latent_image.")
        if tuple(call.latent_image.shape) != tuple(stage.noise.shape):
            raise NodeError(node, f"low_noise_model: its sampler samples a latent of shape "
                                  f"{tuple(call.latent_image.shape)} but the high-noise stage sampled "
                                  f"{tuple(stage.noise.shape)}; a patch on one model changes the latent between the sampler "
                                  f"node and the sampler. Use the same patches on both models, or remove that patch.")
        s_switch = float(stage.sigmas[-1])
        if abs(float(sigmas[0]) - s_switch) > 1e-4 * max(1.0, s_switch):
            raise NodeError(node, f"low_noise_model: its sampler starts at sigma {float(sigmas[0]):.4g} but the "
                                  f"high-noise stage stopped at sigma {s_switch:.4g}. Use the same steps and scheduler on "
                                  f"both KSamplerAdvanced and set start_at_step of the second to end_at_step of the first.")
        n_high, n_low = int(stage.sigmas.shape[-1]) - 1, int(sigmas.shape[-1]) - 1
        low_steps = [fi.pass_steps(n_low, p, k, c2f) for p in range(k)]
        high_steps = [0] + [fi.pass_steps(n_high, p, k, c2f) for p in range(1, k)]
        starts, t = [], 0
        for p in range(k):
            starts.append((t, t + high_steps[p]))   # (offset of the high stage, offset of the low stage)
            t += high_steps[p] + low_steps[p]
        total = t
        callback = call.callback

        def progress(offset: int):
            def cb(step, x0, x, _total):
                bridge.throw_if_interrupted()
                if callback is not None:
                    callback(offset + int(step), x0, x, total)
            return cb

        def sample(start: torch.Tensor, p: int) -> torch.Tensor:
            bridge.throw_if_interrupted()
            latent = None
            if p > 0:
                raw = bridge.rerun_first_stage(stage, start, fi.pass_sigmas(stage.sigmas, p, k, c2f),
                                               progress(starts[p][0]))
                bridge.resume_sampling(call)
                latent = bridge.second_stage_latent(call, raw, outer.latent_image)
            return call.run_pass(noise, progress(starts[p][1]), fi.pass_sigmas(sigmas, p, k, c2f), latent)

        # an image batch is one video's frames only when either expert attends across it (as make_run)
        dev = call.latent_image.device   # the record is kept on the intermediate device
        out = fi.free_init(sample, stage.noise.to(dev), stage.model_sampling, stage.sigmas[0].to(dev), settings,
                           seed=stage.seed, latent=stage.latent_image.to(dev), max_denoise=stage.max_denoise,
                           batch_frames=stage.attends_across_batch or call.attends_across_batch,
                           mask=None if stage.denoise_mask is None else stage.denoise_mask.to(dev))
        bridge.throw_if_interrupted()
        return out

    return bridge.MultiPassSampler(sampler, run, TAG)


@registry.node(registry.Spec(
    id="TFVFreeInitTwoExperts", display_name="FreeInit (KSampler, two experts)", method="FreeInit", function="patch",
    inputs={"high_noise_model": ("MODEL", {"tooltip": "The model of the FIRST sampler (Wan 2.2: the high-noise "
                                                    "expert, after ModelSamplingSD3 / LoRAs): KSamplerAdvanced "
                                                    "add_noise enable, steps 0..k, return_with_leftover_noise "
                                                    "enable. Not modified."}),
            "low_noise_model": ("MODEL", {"tooltip": "The model of the SECOND sampler (Wan 2.2: the low-noise "
                                                   "expert): KSamplerAdvanced add_noise disable, steps k..N, "
                                                   "taking the first sampler's LATENT. Not modified."}),
            **INPUTS},
    outputs=(("MODEL", "high_noise_model",
              "The high-noise expert for the first KSamplerAdvanced: it samples pass 0 of its steps and records "
              "them."),
             ("MODEL", "low_noise_model",
              "The low-noise expert for the second KSamplerAdvanced: it finishes pass 0, then runs every further "
              "FreeInit pass (the high-noise steps on the high-noise expert, then its own steps) and returns the "
              "last pass."),),
    description=("FreeInit (Wu et al. 2023) for the two-sampler graph of Wan 2.2 14B (two experts: KSamplerAdvanced "
                 "#1 on the high-noise expert with return_with_leftover_noise, #2 on the low-noise expert with "
                 "add_noise disabled). Put this node between the two models and the two samplers; nothing else "
                 "changes. Every pass runs the high-noise steps then the low-noise steps; the video is then re-noised "
                 "with the same initial noise, its low spatio-temporal frequencies are kept and the high ones come "
                 "from fresh noise (seeded by the first sampler's seed and the pass). The first sampler runs pass 0 of "
                 "its steps as usual; the second sampler runs everything else (it loads the high-noise expert again "
                 "for each further pass), with one progress bar. Each sampler keeps its own settings (CFG, sampler); "
                 "the schedules must join (same steps and scheduler, start_at_step = end_at_step). With both "
                 "experts the same model the result equals FreeInit (KSampler) on one KSampler. The initial noise is "
                 "the one after Dependency Noise / SmoothInit patches on the high-noise expert. ZS^2 Long Video (chunks) "
                 "on either model is refused (use FreeInit (KSampler) on one model there). " + _FRAMES_NOTE
                 + " " + _COST_NOTE),
    aliases=registry.FREEINIT_TERMS + ("wan 2.2", "wan22", "two experts", "high noise", "low noise",
                                        "ksampleradvanced") + registry.VIDEO_TERMS))
class FreeInitTwoExperts:
    def patch(self, high_noise_model, low_noise_model, iterations, filter, d_s, d_t, order, min_signal,  # noqa: A002
              coarse_to_fine=False):
        node = self.NODE_NAME
        settings = settings_from_inputs(iterations, filter, d_s, d_t, order, min_signal, coarse_to_fine)
        records: list = []   # shared by both patched models: the first stages, newest first

        def publish(outer: bridge.OuterCall) -> None:
            stage = outer.extras.get("stage")
            if stage is not None and outer.output is not None:
                records.insert(0, bridge.store_first_stage(stage, outer.output))
                del records[_MAX_RECORDS:]

        high = bridge.add_outer_stage_wrapper(high_noise_model, WRAPPER_KEY,
                                              lambda s, outer: first_stage_sampler(node, s, settings, outer), publish)
        low = bridge.add_outer_stage_wrapper(low_noise_model, WRAPPER_KEY,
                                             lambda s, outer: second_stage_sampler(node, s, settings, outer, records))
        return (high, low)

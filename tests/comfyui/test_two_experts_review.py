"""FreeInit (KSampler, two experts): the review findings of issue 20 (items 1-4 and the memory / rerun
checks), in the real ComfyUI with tiny random-weight models.

1. A batch of independent images (Wan 2.2 14B stills ``[2, 16, 1, H, W]``, an SD1.5 base + refiner
   split ``[B, 4, H, W]``) is not low-passed across the batch: image 0 of a batch equals the batch-1 run.
2. ComfyUI 0.33.0's FreeNoise (core context windows) shuffles the noise once, as on one KSampler: the
   passes that re-run the first stage are not reshuffled; with both experts the same model the video
   equals one-model FreeInit.
3. ``--fp16-intermediates`` (0.33.0): the first stage's output reaches sampler #2 as float16; the graph
   runs (the same video as without the flag, to float16 rounding) and a foreign latent is still refused.
4. ZS^2 Long Video (chunks) on either expert stops with an error naming both nodes and the fix.
Checks: the low-noise model's reload goes through prepare_sampling (PREPARE_SAMPLING wrappers such as
context windows' estimate, ControlNet models) and prepares a ControlNet shared by both samplers' conds
again (the nested re-run's cleanup reset it); AnimateDiff-Evolved's Sample Settings, which redraw the
noise on every sampling, do not reach the re-runs (as FreeNoise in 2).
"""
import pytest
import torch

from comfy_harness import sd15_conds, tiny_sd15, tiny_wan, wan_conds

N, K_SWITCH, SEED = 4, 2, 5
NODE = r"FreeInit \(KSampler, two experts\)"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def wan_experts(pack):
    """Two tiny Wan 2.1-architecture experts (high-noise, low-noise): two weight seeds."""
    return tiny_wan(0), tiny_wan(1)


@pytest.fixture(scope="module")
def sd_base_refiner(pack):
    """A tiny SD1.5 base and refiner: two weight seeds."""
    return tiny_sd15(seed=0), tiny_sd15(seed=1)


def _two_experts(mods, h, l, iterations=3):
    return mods["fi"].FreeInitTwoExperts().patch(h, l, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)


def _freeinit(mods, m, iterations=3):
    return mods["fi"].FreeInitModelPatch().patch(m, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)[0]


def _split(mods, h, l, conds, samples, cfg, seed=SEED, steps=N, switch=K_SWITCH):
    """The stock two-sampler graph: KSamplerAdvanced #1 (add_noise, 0..switch, leftover noise) on ``h``,
    #2 (no noise, switch..end) on ``l``; returns #2's LATENT samples."""
    pos, neg = conds
    ka = mods["nodes"].KSamplerAdvanced()
    a = ka.sample(h, "enable", seed, steps, cfg, "euler", "simple", pos, neg, {"samples": samples}, 0, switch,
                  "enable")[0]
    return ka.sample(l, "disable", 0, steps, cfg, "euler", "simple", pos, neg, a, switch, 10000, "disable")[0]["samples"]


def _ksampler(mods, m, conds, samples, cfg, seed=SEED, steps=N):
    pos, neg = conds
    return mods["nodes"].KSampler().sample(m, seed, steps, cfg, "euler", "simple", pos, neg,
                                           {"samples": samples})[0]["samples"]


def _gap(a, b) -> float:
    return float((a - b).abs().max())


# --------------------------------------------------------------------------- 1. independent images

def test_wan_batch_of_stills_is_not_coupled(mods, wan_experts):
    """Wan 2.2 14B stills (EmptyHunyuanLatentVideo length 1, batch 2: [2, 16, 1, H, W]): image 0 of the
    batch equals the batch-1 run (was 3.77 apart: the temporal low-pass ran across the two stills)."""
    wan_high, wan_low = wan_experts
    with torch.inference_mode():
        h, l = _two_experts(mods, wan_high, wan_low)
        two = _split(mods, h, l, wan_conds(), torch.zeros(2, 16, 1, 8, 8), 3.5)
        one = _split(mods, h, l, wan_conds(), torch.zeros(1, 16, 1, 8, 8), 3.5)
        plain = _split(mods, wan_high, wan_low, wan_conds(), torch.zeros(1, 16, 1, 8, 8), 3.5)
    gap = _gap(two[:1], one)
    print(f"Wan stills, image 0 of batch 2 vs batch 1: {gap:.3g} (FreeInit effect {_gap(one, plain):.3g})")
    assert _gap(one, plain) > 1.0
    assert gap < 1e-3


def test_sd15_base_refiner_batch_is_not_coupled(mods, sd_base_refiner):
    """An SD1.5 base + refiner split, batch 4 ([4, 4, H, W], no model attending across the batch): image 0
    equals the batch-1 run (was 403 apart on the tiny SD1.5)."""
    sd_base, sd_refiner = sd_base_refiner
    with torch.inference_mode():
        h, l = _two_experts(mods, sd_base, sd_refiner)
        four = _split(mods, h, l, sd15_conds(), torch.zeros(4, 4, 8, 8), 7.5)
        one = _split(mods, h, l, sd15_conds(), torch.zeros(1, 4, 8, 8), 7.5)
        plain = _split(mods, sd_base, sd_refiner, sd15_conds(), torch.zeros(1, 4, 8, 8), 7.5)
    gap = _gap(four[:1], one)
    print(f"SD1.5 base+refiner, image 0 of batch 4 vs batch 1: {gap:.3g} (FreeInit effect {_gap(one, plain):.3g})")
    assert _gap(one, plain) > 1.0
    assert gap < 1e-4 * max(1.0, float(one.abs().max()))   # float rounding of batch 4 vs 1 (values ~500)


# --------------------------------------------------------------------------- 2. FreeNoise (0.33.0 context windows)

def test_freenoise_is_not_reapplied_on_the_reruns(mods, wan_experts):
    """Core context windows with FreeNoise (ComfyUI 0.33.0: 7 latent frames, windows of 3, overlap 1) on
    both experts, the same model: the two-sampler FreeInit video equals FreeInit (KSampler) on one
    KSampler, where FreeNoise shuffles the initial noise once (was 24.4 apart: every re-run of the first
    stage went through the SAMPLER_SAMPLE wrappers again and FreeNoise reshuffled the pass's noise)."""
    wan_high = wan_experts[0]
    from test_newer_comfyui import CW_FRAMES, _context_windows, _has_freenoise
    cw = _context_windows(wan_high)
    if not _has_freenoise(cw):
        pytest.skip("this ComfyUI's core context windows have no FreeNoise (added in 0.33.0)")
    latent = torch.zeros(1, 16, CW_FRAMES, 4, 4)
    with torch.inference_mode():
        h, l = _two_experts(mods, cw, cw)
        two = _split(mods, h, l, wan_conds(), latent, 3.5)
        one = _ksampler(mods, _freeinit(mods, cw), wan_conds(), latent, 3.5)
        plain = _ksampler(mods, cw, wan_conds(), latent, 3.5)
    gap = _gap(two, one)
    print(f"FreeNoise on: two same-model experts vs one-model FreeInit: {gap:.3g} (FreeInit effect {_gap(one, plain):.3g})")
    assert _gap(one, plain) > 1.0
    assert gap < 1e-4


# --------------------------------------------------------------------------- 3. --fp16-intermediates (0.33.0)

@pytest.fixture
def fp16_intermediates(mods):
    """ComfyUI's ``--fp16-intermediates`` set in-process for one test (restored after it)."""
    mm = mods["mm"]
    if not hasattr(mm, "intermediate_dtype") or not hasattr(mm.args, "fp16_intermediates"):
        pytest.skip("this ComfyUI has no --fp16-intermediates (added in 0.33.0)")
    before = mm.args.fp16_intermediates
    mm.args.fp16_intermediates = True
    try:
        assert mm.intermediate_dtype() == torch.float16
        yield
    finally:
        mm.args.fp16_intermediates = before


def test_fp16_intermediates_two_expert_graph_runs(mods, wan_experts, fp16_intermediates):
    """With --fp16-intermediates sampler #1's LATENT reaches sampler #2 as float16: the graph runs (it was
    refused as "not the output of a sampler that used this node's high_noise_model"), every pass's
    switch latent rounded to float16 as in the stock graph, and a latent from another sampler is still
    refused."""
    wan_high, wan_low = wan_experts
    pos, neg = wan_conds()
    latent = torch.zeros(1, 16, 3, 8, 8)
    ka = mods["nodes"].KSamplerAdvanced()
    with torch.inference_mode():
        h, l = _two_experts(mods, wan_high, wan_low)
        half = _split(mods, h, l, (pos, neg), latent.half(), 3.5)
        other = ka.sample(wan_high, "enable", SEED + 7, N, 3.5, "euler", "simple", pos, neg, {"samples": latent.half()},
                          0, K_SWITCH, "enable")[0]
        assert other["samples"].dtype == torch.float16
        with pytest.raises(ValueError, match=NODE + r": low_noise_model: the latent of its sampler is not the output"):
            ka.sample(l, "disable", 0, N, 3.5, "euler", "simple", pos, neg, other, K_SWITCH, 10000, "disable")
        mods["mm"].args.fp16_intermediates = False
        full = _split(mods, h, l, (pos, neg), latent, 3.5)
        plain = _split(mods, wan_high, wan_low, (pos, neg), latent, 3.5)
    gap = _gap(half.float(), full)
    print(f"--fp16-intermediates vs float32 intermediates: {gap:.3g} (FreeInit effect {_gap(full, plain):.3g}, "
          f"values up to {float(full.abs().max()):.3g})")
    assert half.dtype == torch.float16
    assert _gap(full, plain) > 1.0
    assert gap < 2e-3 * max(1.0, float(full.abs().max()))   # float16 rounding at the switch of each pass


# --------------------------------------------------------------------------- 4. ZS^2 Long Video (chunks)

@pytest.mark.parametrize("where", ["both", "high", "low"])
def test_long_video_chunks_are_refused_with_a_node_error(mods, sd_base_refiner, where):
    """ZS^2 Long Video (chunks) on an expert (5 frames in chunks of 3): the two-expert FreeInit cannot
    re-run the first sampler chunk by chunk, so it stops with an error naming the node, the input, ZS^2
    Long Video and the fix (was a bare "RuntimeError: The size of tensor a (3) must match ... (5)");
    with chunk_frames >= the frame count the graph runs."""
    sd_base, sd_refiner = sd_base_refiner
    long = mods["long"].ZS2LongVideo()
    h_in = long.patch(sd_base, 3)[0] if where in ("both", "high") else sd_base
    l_in = long.patch(sd_refiner, 3)[0] if where in ("both", "low") else sd_refiner
    which = "high_noise_model" if where in ("both", "high") else "low_noise_model"
    with torch.inference_mode():
        h, l = _two_experts(mods, h_in, l_in, 2)
        with pytest.raises(ValueError, match=NODE + ": " + which + r": ZS\^2 Long Video \(chunks\) .*chunk_frames"):
            _split(mods, h, l, sd15_conds(), torch.zeros(5, 4, 8, 8), 7.5)
        h, l = _two_experts(mods, long.patch(sd_base, 5)[0], long.patch(sd_refiner, 5)[0], 2)
        out = _split(mods, h, l, sd15_conds(), torch.zeros(5, 4, 8, 8), 7.5)
    assert out.shape == (5, 4, 8, 8) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- reload of the low-noise model

def test_low_noise_reload_goes_through_prepare_sampling(mods, wan_experts):
    """Every pass after the first reloads the low-noise expert through ComfyUI's prepare_sampling, so its
    PREPARE_SAMPLING wrappers (core context windows' per-window estimate) and the conds' ControlNet
    models count: the wrapper sees one call per pass (was 1 of 3: the reload estimated without it)."""
    wan_high, wan_low = wan_experts
    seen = []

    def prepare(executor, model, noise_shape, *args, **kwargs):
        seen.append(tuple(noise_shape))
        return executor(model, noise_shape, *args, **kwargs)

    low = wan_low.clone()
    low.add_wrapper_with_key(mods["pe"].WrappersMP.PREPARE_SAMPLING, "test.prepare", prepare)
    with torch.inference_mode():
        h, l = _two_experts(mods, wan_high, low, 3)
        _split(mods, h, l, wan_conds(), torch.zeros(1, 16, 3, 8, 8), 3.5)
    assert seen == [(1, 16, 3, 8, 8)] * 3


def _tiny_controlnet(seed=0):
    """A ControlNet (``comfy.controlnet.ControlNet``) matching ``tiny_sd15``'s UNet, random weights (zero
    convs too, so it changes the result); ComfyUI's loader cannot detect 2 heads of 16 channels."""
    import comfy.cldm.cldm
    import comfy.controlnet
    from checkpoints import init_random
    from comfy_harness import TINY_SD15_UNET
    cfg = dict(TINY_SD15_UNET)
    cfg.pop("out_channels")
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, device="cpu", **cfg)
    init_random(net, seed + 3)
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"))


def test_controlnet_shared_by_both_samplers_survives_the_reruns(mods, sd_base_refiner):
    """One ControlNet (applied over 0-60 % of the schedule) in the conds of both samplers, as in a graph
    where the same conditioning feeds both KSamplerAdvanced: the nested re-run of the first stage cleans
    that ControlNet up (ComfyUI's cleanup_models); the second stage prepares it again for its own model
    and schedule. Both experts the same model: the video equals one-model FreeInit."""
    sd_base = sd_base_refiner[0]
    import nodes
    cn = _tiny_controlnet()
    pos, neg = sd15_conds()
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    pos, neg = nodes.ControlNetApplyAdvanced().apply_controlnet(pos, neg, cn, hint, 1.0, 0.0, 0.6)[:2]
    latent = torch.zeros(1, 4, 8, 8)
    with torch.inference_mode():
        h, l = _two_experts(mods, sd_base, sd_base, 2)
        two = _split(mods, h, l, (pos, neg), latent, 7.5)
        one = _ksampler(mods, _freeinit(mods, sd_base, 2), (pos, neg), latent, 7.5)
        no_cn = _ksampler(mods, _freeinit(mods, sd_base, 2), sd15_conds(), latent, 7.5)
    gap = _gap(two, one)
    print(f"shared ControlNet: two same-model experts vs one-model FreeInit: {gap:.3g} "
          f"(ControlNet effect {_gap(one, no_cn):.3g}, values up to {float(one.abs().max()):.3g})")
    assert _gap(one, no_cn) > 1e-2
    assert gap < 1e-4 * max(1.0, float(one.abs().max()))


# --------------------------------------------------------------------------- AnimateDiff-Evolved's noise edits

def test_animatediff_sample_settings_noise_is_not_redrawn_on_the_reruns(mods, sd_base_refiner, ade):
    """AnimateDiff-Evolved's Sample Settings (here seed_offset 1, noise_type constant) replace the noise in
    ADE's OUTER_SAMPLE wrapper on every CFGGuider.sample, the re-runs of the first stage included; they
    start from the pass's FreeInit noise all the same: both experts the same Use Evolved Sampling model =
    one-model FreeInit on it (no motion model: the cheap part of ADE that edits noise)."""
    from ade_support import ade_missing_reason, ade_node, first
    reason = ade_missing_reason()
    if ade is None or reason:
        pytest.skip(reason or "ComfyUI-AnimateDiff-Evolved could not be loaded")
    settings = first(ade_node("ADE_AnimateDiffSamplingSettings")(batch_offset=0, noise_type="constant",
                                                                 seed_gen="comfy", seed_offset=1))
    evo = first(ade_node("ADE_UseEvolvedSampling")(model=sd_base_refiner[0], beta_schedule="autoselect",
                                                   sample_settings=settings))
    latent = torch.zeros(1, 4, 8, 8)
    with torch.inference_mode():
        h, l = _two_experts(mods, evo, evo, 2)
        two = _split(mods, h, l, sd15_conds(), latent, 7.5)
        one = _ksampler(mods, _freeinit(mods, evo, 2), sd15_conds(), latent, 7.5)
        plain = _ksampler(mods, evo, sd15_conds(), latent, 7.5)
    gap = _gap(two, one)
    print(f"ADE Sample Settings: two same-model experts vs one-model FreeInit: {gap:.3g} "
          f"(FreeInit effect {_gap(one, plain):.3g}, values up to {float(one.abs().max()):.3g})")
    assert _gap(one, plain) > 1.0
    assert gap < 1e-4 * max(1.0, float(one.abs().max()))

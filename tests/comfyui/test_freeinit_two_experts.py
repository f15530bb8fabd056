"""FreeInit (KSampler, two experts) in Wan 2.2's two-expert graph (issue 14 parts 1 and 2), in the real ComfyUI.

The stock Wan 2.2 14B layout (video_wan2_2_14B_t2v): KSamplerAdvanced #1 on the high-noise expert
(add_noise enable, steps 0..k of N, return_with_leftover_noise enable), KSamplerAdvanced #2 on the
low-noise expert (add_noise disable, steps k..N). The experts are tiny random-weight Wan 2.1-architecture
models (Wan 2.2 14B experts are Wan 2.1-architecture), two weight seeds = two experts, shift 8 each.

FreeInit (KSampler, two experts): with both experts the same model the video equals FreeInit (KSampler)
on one KSampler (to the rounding of the stock split itself); with two experts every pass equals an
independent reference built from the stock split graph and the FreeInit mix; NFE per expert =
iterations x its steps x 2 (CFG); one progress bar in the second sampler; errors name node and input;
with SmoothInit (KSampler) on the high-noise expert the initial noise is optimised once. The other
methods in the same graph (SmoothInit, Dependency Noise, NI-VSDS / Static Video, CFG 1):
test_wan22_two_expert_graph.py.

The review findings of issue 20 (items 1-4 and the memory / rerun checks; moved from
test_two_experts_review.py), with these experts and a tiny SD1.5 base + refiner (two weight seeds):

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

from comfy_harness import count_model_calls, sample_custom_advanced, sd15_conds, tiny_sd15, tiny_wan, wan_conds

N, K_SWITCH, CFG, SEED = 4, 2, 3.5, 5
LATENT_SHAPE = (1, 16, 3, 8, 8)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def high(pack):
    return tiny_wan(0)


@pytest.fixture(scope="module")
def low(pack):
    return tiny_wan(1)


def _latent():
    return {"samples": torch.zeros(LATENT_SHAPE)}


def _two_stage(mods, h, l, seed=SEED, cfg=CFG, latent=None, steps=N, switch=K_SWITCH, start=0, cfg_low=None,
               low_add_noise="disable", low_start=None):
    """The stock Wan 2.2 14B sampling: KSamplerAdvanced #1 (high) then #2 (low); returns both outputs."""
    pos, neg = wan_conds()
    ka = mods["nodes"].KSamplerAdvanced()
    a = ka.sample(h, "enable", seed, steps, cfg, "euler", "simple", pos, neg, latent or _latent(), start, switch,
                  "enable")[0]
    b = ka.sample(l, low_add_noise, 0, steps, cfg if cfg_low is None else cfg_low, "euler", "simple", pos, neg, a,
                  switch if low_start is None else low_start, 10000, "disable")[0]
    return a["samples"], b["samples"]


def _two_experts(mods, h, l, iterations=3, c2f=False):
    return mods["fi"].FreeInitTwoExperts().patch(h, l, iterations, "butterworth", 0.25, 0.25, 4, 0.068, c2f)


def _freeinit(mods, m, iterations=3):
    return mods["fi"].FreeInitModelPatch().patch(m, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)[0]


def _ksampler(mods, m, seed=SEED, cfg=CFG, steps=N):
    pos, neg = wan_conds()
    return mods["nodes"].KSampler().sample(m, seed, steps, cfg, "euler", "simple", pos, neg, _latent())[0]["samples"]


class _Noise:
    """A NOISE yielding a fixed unit-noise tensor (test reference)."""

    def __init__(self, t, seed=0):
        self.t, self.seed = t, seed

    def generate_noise(self, latent):
        return self.t.clone()


def _custom_two_stage(mods, h, l, noise, seed=SEED):
    """The same split with SamplerCustomAdvanced (SplitSigmas at k, Disable Noise for the low stage)."""
    cs = mods["cs"]
    pos, neg = wan_conds()
    sigmas = cs.BasicScheduler().get_sigmas(h, "simple", N, 1.0)[0]
    hi_s, lo_s = cs.SplitSigmas().get_sigmas(sigmas, K_SWITCH)
    sampler = cs.KSamplerSelect().get_sampler("euler")[0]
    gh = cs.CFGGuider().get_guider(h, pos, neg, CFG)[0]
    gl = cs.CFGGuider().get_guider(l, pos, neg, CFG)[0]
    a = sample_custom_advanced(noise, gh, sampler, hi_s, _latent())
    return sample_custom_advanced(cs.DisableNoise().get_noise()[0], gl, sampler, lo_s, a)["samples"]


# --------------------------------------------------------------------------- FreeInit, two experts

def test_two_experts_of_one_model_equal_one_model_freeinit(mods, high):
    """Both experts the same model: the two-sampler FreeInit video equals FreeInit (KSampler) on one
    KSampler, up to the rounding the stock split itself adds (the output of #1 goes through
    process_latent_out / in and the leftover-noise rescaling); FreeInit changes the video a lot; with
    iterations = 1 the patched graph is the stock graph bit for bit."""
    with torch.inference_mode():
        _, split = _two_stage(mods, high, high)
        plain = _ksampler(mods, high)
        h, l = _two_experts(mods, high, high)
        _, two = _two_stage(mods, h, l)
        one = _ksampler(mods, _freeinit(mods, high))
        h1, l1 = _two_experts(mods, high, high, iterations=1)
        _, once = _two_stage(mods, h1, l1)
    floor = float((split - plain).abs().max())                 # the stock split's own rounding (~1e-5)
    assert floor < 1e-4
    assert float((one - plain).abs().max()) > 1.0               # FreeInit matters
    torch.testing.assert_close(two, one, rtol=0, atol=max(4 * floor, 1e-5))
    assert torch.equal(once, split)


def test_two_experts_every_pass_equals_the_reference_split_and_freeinit_mix(mods, high, low):
    """Two different experts: the result equals an independent reference -- the stock split run with
    SamplerCustomAdvanced from pass p's unit noise, that noise being FreeInit's mix (samplers.freeinit,
    checked against the official filters in test_freeinit_nodes) of the previous pass's finished video
    re-noised with the SAME initial noise (RandomNoise of the first sampler's seed), fresh high
    frequencies from (seed, p) -- and differs from FreeInit on the high-noise expert alone."""
    core = mods["core"]
    iterations = 3
    with torch.inference_mode():
        h, l = _two_experts(mods, high, low, iterations)
        _, two = _two_stage(mods, h, l)
        eps = mods["cs"].Noise_RandomNoise(SEED).generate_noise(_latent())
        ms = high.get_model_object("model_sampling")
        sigma0 = float(mods["cs"].BasicScheduler().get_sigmas(high, "simple", N, 1.0)[0][0])
        settings = core.Settings(iterations=iterations)
        lpf = core.low_pass_filter(core.latent_thw(eps.shape))
        x = _custom_two_stage(mods, high, low, _Noise(eps, SEED))
        for p in range(1, iterations):
            x0 = high.model.process_latent_in(x)
            u = core.reinit_noise(ms, sigma0, eps, x0, core.fresh_noise(eps.shape, SEED, p), lpf, None, True,
                                  settings.min_signal)
            x = _custom_two_stage(mods, high, low, _Noise(u, SEED))
        one_expert = _ksampler(mods, _freeinit(mods, high))
    torch.testing.assert_close(two, x, rtol=1e-5, atol=1e-4)
    assert float((two - one_expert).abs().max()) > 1.0


@pytest.mark.parametrize("iterations,cfg", [(3, CFG), (2, 1.0)])
def test_nfe_per_expert_and_one_progress_bar(mods, high, low, iterations, cfg):
    """Real model calls per expert (DIFFUSION_MODEL wrapper): high = iterations x k steps, low =
    iterations x (N - k) steps, x2 for CFG (1 call per step at CFG 1, the distilled path); the first
    sampler shows its k steps, the second ONE bar over everything else."""
    ch, cl, bars = [], [], []
    utils = mods["utils"]
    with torch.inference_mode():
        h, l = _two_experts(mods, count_model_calls(high, ch), count_model_calls(low, cl), iterations)
        utils.set_progress_bar_global_hook(lambda v, t, preview=None, node_id=None: bars.append((v, t)))
        try:
            _two_stage(mods, h, l, cfg=cfg)
        finally:
            utils.set_progress_bar_global_hook(None)
    per_step = 2 if cfg != 1.0 else 1
    assert sum(ch) == iterations * K_SWITCH * per_step and len(ch) == iterations * K_SWITCH
    assert sum(cl) == iterations * (N - K_SWITCH) * per_step and len(cl) == iterations * (N - K_SWITCH)
    total = (N - K_SWITCH) + (iterations - 1) * N
    assert bars[-1] == (total, total)
    assert [v for v, t in bars if t == total] == list(range(1, total + 1))


def test_sampler_custom_advanced_split_equals_the_ksampler_advanced_split(mods, high, low):
    """The same node in the SamplerCustomAdvanced form of the split (SplitSigmas, Disable Noise for the
    second stage): the same video as with the two KSamplerAdvanced."""
    with torch.inference_mode():
        h, l = _two_experts(mods, high, low, 2)
        _, a = _two_stage(mods, h, l)
        b = _custom_two_stage(mods, h, l, mods["cs"].Noise_RandomNoise(SEED))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_same_seed_same_video_and_the_models_are_not_modified(mods, high, low):
    with torch.inference_mode():
        before = [high.model_options, low.model_options]
        h, l = _two_experts(mods, high, low, 2)
        a = _two_stage(mods, h, l)[1]
        b = _two_stage(mods, h, l)[1]
        c = _two_stage(mods, h, l, seed=SEED + 1)[1]
        _, plain = _two_stage(mods, high, low)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert before == [high.model_options, low.model_options]
    assert float((a - plain).abs().max()) > 1.0


def test_coarse_to_fine_shortens_each_stage(mods, high, low):
    ch, cl = [], []
    with torch.inference_mode():
        h, l = _two_experts(mods, count_model_calls(high, ch), count_model_calls(low, cl), 3, c2f=True)
        _two_stage(mods, h, l, steps=6, switch=3)
    steps = mods["core"].pass_steps
    assert len(ch) == sum(steps(3, p, 3, True) for p in range(3)) == 1 + 2 + 3
    assert len(cl) == 1 + 2 + 3


def test_errors_name_node_and_input(mods, high, low):
    node = r"FreeInit \(KSampler, two experts\)"
    pos, neg = wan_conds()
    ka = mods["nodes"].KSamplerAdvanced()
    with torch.inference_mode():
        h, l = _two_experts(mods, high, low)
        # the one-model patch on a first stage points to the two-expert node
        with pytest.raises(ValueError, match=r"FreeInit \(KSampler\): .*two experts"):
            _two_stage(mods, _freeinit(mods, high), low)
        # the second sampler adds noise
        with pytest.raises(ValueError, match=node + r": low_noise_model: its sampler adds noise"):
            _two_stage(mods, h, l, low_add_noise="enable")
        # the schedules do not join
        with pytest.raises(ValueError, match=node + r": low_noise_model: .*starts at sigma"):
            _two_stage(mods, h, l, low_start=K_SWITCH + 1)
        # the low-noise model's sampler on a latent that no first stage of this node produced
        other = ka.sample(high, "enable", SEED + 7, N, CFG, "euler", "simple", pos, neg, _latent(), 0, K_SWITCH,
                          "enable")[0]
        with pytest.raises(ValueError, match=node + r": low_noise_model: the latent of its sampler is not the output"):
            ka.sample(l, "disable", 0, N, CFG, "euler", "simple", pos, neg, other, K_SWITCH, 10000, "disable")
        # FreeInit twice
        with pytest.raises(ValueError, match="applied twice"):
            _two_stage(mods, _freeinit(mods, h), l)


def test_high_noise_expert_alone_denoising_to_the_end_is_one_model_freeinit(mods, high, low):
    """The high_noise_model output on a sampler that denoises to sigma 0 is plain FreeInit."""
    with torch.inference_mode():
        h, _ = _two_experts(mods, high, low)
        a = _ksampler(mods, h)
        b = _ksampler(mods, _freeinit(mods, high))
    assert torch.equal(a, b)


# --------------------------------------------------------------------------- with SmoothInit on the high-noise expert

def _smoothinit(mods, m, cfg=0.0, K=2):
    return mods["si"].SmoothInitModelPatch().patch(m, "Fast-SmoothInit (custom)", cfg, 1.0, 50, K, 0.05, "uniform",
                                                   0.05, 0.05, 0)[0]


def test_freeinit_two_experts_starts_from_smoothinit_noise_optimised_once(mods, high, low):
    """SmoothInit (KSampler) on the high-noise expert + FreeInit (KSampler, two experts), in either
    order: the initial noise is optimised once (high expert calls = SmoothInit's NFE + iterations x k CFG
    steps) and FreeInit re-noises with it: the same video in both orders, different from FreeInit alone."""
    si_nfe = mods["si_core"].nfe(2, CFG, 1.0)
    ca, cb = [], []
    with torch.inference_mode():
        h, l = _two_experts(mods, _smoothinit(mods, count_model_calls(high, ca)), low, 2)
        _, a = _two_stage(mods, h, l)
        h2, l2 = _two_experts(mods, count_model_calls(high, cb), low, 2)
        _, b = _two_stage(mods, _smoothinit(mods, h2), l2)
        h3, l3 = _two_experts(mods, high, low, 2)
        _, c = _two_stage(mods, h3, l3)
    assert si_nfe == 2 * (2 + 1)
    assert sum(ca) == si_nfe + 2 * K_SWITCH * 2 == sum(cb)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert float((a - c).abs().max()) > 1e-2


# --------------------------------------------------------------------------- CFG 1 (distilled 4-step path)

def test_freeinit_tooltips_state_the_cost_on_a_4_step_model(mods):
    for cls in (mods["fi"].FreeInitModelPatch, mods["fi"].FreeInitSampler, mods["fi"].FreeInitTwoExperts):
        assert "3 x 4 x 1 = 12 model calls" in cls.DESCRIPTION


# =========================================================================== review findings (issue 20)
# (moved from test_two_experts_review.py; items 1-4 and the memory / rerun checks, see the module docstring)

NODE = r"FreeInit \(KSampler, two experts\)"


@pytest.fixture(scope="module")
def wan_experts(pack):
    """Two tiny Wan 2.1-architecture experts (high-noise, low-noise): two weight seeds."""
    return tiny_wan(0), tiny_wan(1)


@pytest.fixture(scope="module")
def sd_base_refiner(pack):
    """A tiny SD1.5 base and refiner: two weight seeds."""
    return tiny_sd15(seed=0), tiny_sd15(seed=1)


def _split(mods, h, l, conds, samples, cfg, seed=SEED, steps=N, switch=K_SWITCH):
    """The stock two-sampler graph: KSamplerAdvanced #1 (add_noise, 0..switch, leftover noise) on ``h``,
    #2 (no noise, switch..end) on ``l``; returns #2's LATENT samples."""
    pos, neg = conds
    ka = mods["nodes"].KSamplerAdvanced()
    a = ka.sample(h, "enable", seed, steps, cfg, "euler", "simple", pos, neg, {"samples": samples}, 0, switch,
                  "enable")[0]
    return ka.sample(l, "disable", 0, steps, cfg, "euler", "simple", pos, neg, a, switch, 10000, "disable")[0]["samples"]


def _ksampler_on(mods, m, conds, samples, cfg, seed=SEED, steps=N):
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
        one = _ksampler_on(mods, _freeinit(mods, cw), wan_conds(), latent, 3.5)
        plain = _ksampler_on(mods, cw, wan_conds(), latent, 3.5)
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
        one = _ksampler_on(mods, _freeinit(mods, sd_base, 2), (pos, neg), latent, 7.5)
        no_cn = _ksampler_on(mods, _freeinit(mods, sd_base, 2), sd15_conds(), latent, 7.5)
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
        one = _ksampler_on(mods, _freeinit(mods, evo, 2), sd15_conds(), latent, 7.5)
        plain = _ksampler_on(mods, evo, sd15_conds(), latent, 7.5)
    gap = _gap(two, one)
    print(f"ADE Sample Settings: two same-model experts vs one-model FreeInit: {gap:.3g} "
          f"(FreeInit effect {_gap(one, plain):.3g}, values up to {float(one.abs().max()):.3g})")
    assert _gap(one, plain) > 1.0
    assert gap < 1e-4 * max(1.0, float(one.abs().max()))

"""Wan 2.2's two-expert graph and distilled CFG-1 sampling (issue 14 parts 1 and 2), in the real ComfyUI.

The stock Wan 2.2 14B layout (video_wan2_2_14B_t2v): KSamplerAdvanced #1 on the high-noise expert
(add_noise enable, steps 0..k of N, return_with_leftover_noise enable), KSamplerAdvanced #2 on the
low-noise expert (add_noise disable, steps k..N). The experts are tiny random-weight Wan 2.1-architecture
models (Wan 2.2 14B experts are Wan 2.1-architecture), two weight seeds = two experts, shift 8 each.

FreeInit (KSampler, two experts): with both experts the same model the video equals FreeInit (KSampler)
on one KSampler (to the rounding of the stock split itself); with two experts every pass equals an
independent reference built from the stock split graph and the FreeInit mix; NFE per expert =
iterations x its steps x 2 (CFG); one progress bar in the second sampler; errors name node and input.
SmoothInit (KSampler) / NOISE nodes, Dependency Noise, NI-VSDS and Static Video in the same graph: the
high-noise expert optimises the start noise, the second stage's all-zero noise is left alone.
CFG 1 (distilled 4-step path): SmoothInit's follow-the-sampler default stops with an error.
"""
import pytest
import torch

from comfy_harness import count_model_calls, sample_custom_advanced, tiny_wan, wan21_vae, wan_conds

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
    checked against the official filters in test_freeinit) of the previous pass's finished video
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


# --------------------------------------------------------------------------- initial-noise methods, two experts

def _smoothinit(mods, m, cfg=0.0, K=2):
    return mods["si"].SmoothInitModelPatch().patch(m, "Fast-SmoothInit (custom)", cfg, 1.0, 50, K, 0.05, "uniform",
                                                   0.05, 0.05, 0)[0]


def test_smoothinit_patch_on_the_high_noise_expert(mods, high, low):
    """SmoothInit (KSampler) on the high-noise expert optimises KSamplerAdvanced #1's start noise at its
    first sigma with its CFG (cfg 0 follows 3.5): the video equals the SamplerCustomAdvanced split from
    Fast-SmoothInit Noise (SIGMAS = the high part) at cfg 3.5. A patch on the low-noise expert too leaves
    the second stage's all-zero noise alone: the low expert runs only its N - k CFG steps."""
    cs = mods["cs"]
    pos, neg = wan_conds()
    cl = []
    with torch.inference_mode():
        _, a = _two_stage(mods, _smoothinit(mods, high), _smoothinit(mods, count_model_calls(low, cl)))
        sigmas = cs.BasicScheduler().get_sigmas(high, "simple", N, 1.0)[0]
        hi_s, _ = cs.SplitSigmas().get_sigmas(sigmas, K_SWITCH)
        noise = mods["si"].FastSmoothInitNoise().build(cs.Noise_RandomNoise(SEED), high, pos, neg, CFG, 1.0, 50,
                                                       "custom", 2, 0.05, 0.05, 0.05, sigmas=hi_s)[0]
        b = _custom_two_stage(mods, high, low, noise)
        _, plain = _two_stage(mods, high, low)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert float((a - plain).abs().max()) > 1e-2
    assert sum(cl) == (N - K_SWITCH) * 2


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


def test_dependency_noise_patch_on_the_high_noise_expert(mods, high, low):
    """Dependency Noise (KSampler) on the high-noise expert = the split from the Dependency Noise node;
    the patch on the low-noise expert leaves its all-zero noise alone (same video as without it)."""
    zs2 = mods["zs2"]
    args = (0.01, 10, 15, "dependency", 0.9)
    with torch.inference_mode():
        ph = zs2.DependencyNoiseModelPatch().patch(high, *args)[0]
        pl = zs2.DependencyNoiseModelPatch().patch(low, *args)[0]
        _, a = _two_stage(mods, ph, pl)
        _, a_low_plain = _two_stage(mods, ph, low)
        noise = zs2.DependencyNoise().get_noise(SEED, *args)[0]
        b = _custom_two_stage(mods, high, low, noise)
        _, plain = _two_stage(mods, high, low)
    assert torch.equal(a, a_low_plain)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert float((a - plain).abs().max()) > 1e-2


def test_ni_vsds_and_static_video_with_the_high_noise_expert(mods, high, low):
    """I4VGen in the two-expert graph: a one-frame anchor from the stock split, Static Video From
    Latent (the real Wan VAE encodes the still clip), NI-VSDS Animate on the high-noise expert (the first
    tau sigmas are the high-noise ones), regeneration by the split starting at step 1 (denoise 0.75)."""
    i4v = mods["i4"]
    pos, neg = wan_conds()
    with torch.inference_mode():
        _, anchor = _two_stage(mods, high, low, latent={"samples": torch.zeros(1, 16, 1, 8, 8)})
        static = i4v.StaticVideoFromLatent().build({"samples": anchor}, 3, "auto", 0, model=high, vae=wan21_vae())[0]
        assert static["samples"].shape == LATENT_SHAPE
        anim = i4v.NIVSDSAnimate().animate(high, pos, neg, static, 7, N, CFG, "simple", 0.6, "1")[0]
        _, regen = _two_stage(mods, high, low, latent=anim, start=1)
    assert float((anim["samples"] - static["samples"]).abs().max()) > 1e-3
    assert regen.shape == LATENT_SHAPE and torch.isfinite(regen).all()


# --------------------------------------------------------------------------- CFG 1 (distilled 4-step path)

def test_smoothinit_follow_mode_at_cfg_1_stops_with_an_error(mods, high, low):
    """The stock fast path (4 steps, switch 2, CFG 1): SmoothInit (KSampler)'s cfg 0 would follow CFG 1
    = inversion_cfg and inject nothing; it stops with an error naming the node, cfg and what to set. An
    explicit cfg (3.5) runs and changes the start noise; the NOISE nodes have no follow mode."""
    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): cfg is 0 \(follow the sampler\) but the "
                                             r"sampler's CFG is 1.*Set cfg to a value above inversion_cfg"):
            _two_stage(mods, _smoothinit(mods, high), low, cfg=1.0)
        _, explicit = _two_stage(mods, _smoothinit(mods, high, cfg=3.5), low, cfg=1.0)
        _, plain = _two_stage(mods, high, low, cfg=1.0)
    assert float((explicit - plain).abs().max()) > 1e-2
    for cls in ("ForwardInversionNoise", "SmoothInitNoise", "FastSmoothInitNoise"):
        assert getattr(mods["si"], cls).INPUT_TYPES()["required"]["cfg"][1]["default"] == 7.5


def test_freeinit_tooltips_state_the_cost_on_a_4_step_model(mods):
    for cls in (mods["fi"].FreeInitModelPatch, mods["fi"].FreeInitSampler, mods["fi"].FreeInitTwoExperts):
        assert "3 x 4 x 1 = 12 model calls" in cls.DESCRIPTION

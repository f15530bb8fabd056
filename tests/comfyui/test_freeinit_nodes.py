"""FreeInit nodes in the real ComfyUI (tiny random-weight SD1.5 EPS and Wan flow models).

iterations = 1 is plain sampling exactly; NFE = iterations x plain; each pass's start noise equals a
reference FreeInit mix computed here from the previous pass's output (filters written out as in the
official code); same seed -> same video; the MODEL patch equals the SAMPLER wrapper; one progress
bar; interrupt leaves the model unpatched; FreeInit starts from Dependency Noise / SmoothInit noise
in any patch order; errors name the node and input. Which axis holds the frames (issue 14, edges 3 and
4): a batch of images is independent images unless the model attends across the batch; Qwen-Image
latents of one picture frame per batch entry are frames under TMA.
"""
import math

import pytest
import torch

from comfy_harness import (count_model_calls, qwen_conds, sample_custom_advanced, sd15_conds, tiny_qwen_image,
                            tiny_sd15, wan_conds)

STEPS = 2


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


def _world(kind, frames=None):
    if kind == "sd15":
        pos, neg = sd15_conds()
        return pos, neg, {"samples": torch.zeros(frames or 4, 4, 8, 8)}      # frames as the batch
    pos, neg = wan_conds()
    return pos, neg, {"samples": torch.zeros(1, 16, frames or 3, 8, 8)}      # frames on axis 2 (odd T)


def _model(kind, sd15, wan):
    return sd15 if kind == "sd15" else wan


def _patch(mods, model, iterations=3, filt="butterworth", d_s=0.25, d_t=0.25, order=4, min_signal=0.068, c2f=False):
    return mods["fi"].FreeInitModelPatch().patch(model, iterations, filt, d_s, d_t, order, min_signal, c2f)[0]


def _fi_sampler(mods, inner, iterations=3, filt="butterworth", d_s=0.25, d_t=0.25, order=4, min_signal=0.068):
    return mods["fi"].FreeInitSampler().get_sampler(inner, iterations, filt, d_s, d_t, order, min_signal)[0]


def _ksampler(mods, model, seed, pos, neg, latent, steps=STEPS, cfg=7.5):
    return mods["nodes"].KSampler().sample(model, seed, steps, cfg, "euler", "simple", pos, neg, latent)[0]["samples"]


def _sca(mods, model, noise, sampler, pos, neg, latent, steps=STEPS, cfg=7.5):
    cs = mods["cs"]
    guider = cs.CFGGuider().get_guider(model, pos, neg, cfg)[0]
    sigmas = cs.BasicScheduler().get_sigmas(model, "simple", steps, 1.0)[0]
    return sample_custom_advanced(noise, guider, sampler, sigmas, latent)["samples"]


def _recording_sampler(mods, rec):
    """A KSAMPLER (Euler) that records the start x and the output of every run."""
    kd = mods["kd"]

    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        rec.append({"x": x.detach().clone(), "sigma0": float(sigmas[0])})
        out = kd.sample_euler(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)
        rec[-1]["out"] = out.detach().clone()
        return out

    return mods["samplers"].KSAMPLER(fn)


def _wrappers(model):
    out = {}
    for table in (getattr(model, "wrappers", {}), model.model_options.get("transformer_options", {}).get("wrappers", {})):
        for k, v in table.items():
            for kk, vv in v.items():
                out.setdefault((k, kk), []).extend(vv)
    return out


# --------------------------------------------------------------------------- independent reference

def _ref_lpf(T, H, W, d_s=0.25, d_t=0.25, n=4):
    """Butterworth of the official code, with each axis measured from its fftshift DC bin (N // 2);
    for even sizes this is the official 2 i / N - 1 exactly."""
    lpf = torch.zeros(T, H, W, dtype=torch.float64)
    for t in range(T):
        for h in range(H):
            for w in range(W):
                ft, fh, fw = 2 * (t - T // 2) / T, 2 * (h - H // 2) / H, 2 * (w - W // 2) / W
                if T % 2 == 0:
                    assert ft == 2 * t / T - 1
                d = ((d_s / d_t) * ft) ** 2 + fh ** 2 + fw ** 2
                lpf[t, h, w] = 1 / (1 + (d / d_s ** 2) ** n)
    return lpf


def _ref_next_noise(eps, x0, fresh, sigma0, kind, min_signal=0.068, batch_frames=True):
    """u = eps + r x0 (r = max(a/b, floor); EPS max_denoise a/b = 1/sqrt(1 + s^2), flow at s = 1: 0),
    mixed with fresh noise over (frames, H, W) exactly as the official freq_mix_3d. ``batch_frames=False``
    (an image batch on a model that does not attend across it): each image on its own, 2-D."""
    ab = 1 / math.sqrt(1 + sigma0 ** 2) if kind == "sd15" else (1 - sigma0) / sigma0
    u = (eps.double() + max(ab, min_signal) * x0.double())
    if kind == "sd15" and not batch_frames:
        lpf = _ref_lpf(1, *u.shape[-2:])
        dims = (-3, -2, -1)
        spec = lambda z: torch.fft.fftshift(torch.fft.fftn(z.unsqueeze(2), dim=dims), dim=dims)
        return torch.fft.ifftn(torch.fft.ifftshift(spec(u) * lpf + spec(fresh.double()) * (1 - lpf), dim=dims),
                               dim=dims).real[:, :, 0]
    v = (lambda z: z.permute(1, 0, 2, 3)[None]) if kind == "sd15" else (lambda z: z)
    U, F = v(u), v(fresh.double())
    lpf = _ref_lpf(*U.shape[-3:])
    dims = (-3, -2, -1)
    spec = lambda z: torch.fft.fftshift(torch.fft.fftn(z, dim=dims), dim=dims)
    mixed = torch.fft.ifftn(torch.fft.ifftshift(spec(U) * lpf + spec(F) * (1 - lpf), dim=dims), dim=dims).real
    return mixed[0].permute(1, 0, 2, 3) if kind == "sd15" else mixed


@pytest.mark.parametrize("kind,frames", [("sd15", 4), ("sd15", 1), ("wan", 3), ("wan", 1)])
def test_each_pass_starts_from_the_reference_freeinit_mix_of_the_previous_result(mods, sd15, wan, kind, frames):
    model = _model(kind, sd15, wan)
    if kind == "sd15" and frames > 1:     # the batch is one video's frames when the model attends across it
        model = mods["zs2"].TemporalMomentumAttention().patch(model, 0.98)[0]
    pos, neg, latent = _world(kind, frames)
    rec = []
    seed = 21
    with torch.inference_mode():
        out = _sca(mods, model, mods["cs"].Noise_RandomNoise(seed), _fi_sampler(mods, _recording_sampler(mods, rec)),
                   pos, neg, latent)
        eps = mods["cs"].Noise_RandomNoise(seed).generate_noise(latent)
    assert len(rec) == 3
    s0 = rec[0]["sigma0"]
    scale = math.sqrt(1 + s0 ** 2) if kind == "sd15" else s0          # ComfyUI's max_denoise start: x_T = b * n
    starts = [r["x"] / scale for r in rec]
    torch.testing.assert_close(starts[0], eps, rtol=1e-6, atol=1e-6)
    core = mods["core"]
    for p in (1, 2):
        fresh = core.fresh_noise(eps.shape, seed, p)
        ref = _ref_next_noise(eps, rec[p - 1]["out"], fresh, s0, kind).float()
        torch.testing.assert_close(starts[p], ref, rtol=1e-4, atol=1e-4)
        assert float((starts[p] - eps).abs().max()) > 1e-2           # it did change the noise
    # the result: the last pass's output (SD1.5 process_latent_out is a scale; Wan's a normalisation)
    assert bool(torch.isfinite(out).all()) and out.shape == latent["samples"].shape


def test_img2img_pass_starts_around_the_input_latent(mods, sd15):
    """denoise < 1: the sampler starts at sigma0 < sigma_max around the (processed) input latent L with
    x = L + sigma0 * n; pass 2's unit noise is the mix of eps + (x0 - L) / sigma0 and fresh noise."""
    cs = mods["cs"]
    pos, neg, _ = _world("sd15")
    raw = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    latent = {"samples": raw}
    rec = []
    with torch.inference_mode():
        video = mods["zs2"].TemporalMomentumAttention().patch(sd15, 0.98)[0]   # the batch is frames
        guider = cs.CFGGuider().get_guider(video, pos, neg, 7.5)[0]
        sigmas = cs.BasicScheduler().get_sigmas(sd15, "simple", 4, 0.5)[0]
        sampler = _fi_sampler(mods, _recording_sampler(mods, rec), iterations=2)
        res = cs.SamplerCustomAdvanced().sample(cs.Noise_RandomNoise(12), guider, sampler, sigmas, latent)
        eps = cs.Noise_RandomNoise(12).generate_noise(latent)
    lat = sd15.get_model_object("latent_format").process_in(raw)
    s0 = rec[0]["sigma0"]
    assert s0 < 14.0 and len(rec) == 2
    torch.testing.assert_close((rec[0]["x"] - lat) / s0, eps, rtol=1e-5, atol=1e-5)
    u = eps.double() + (rec[0]["out"].double() - lat.double()) / s0
    fresh = mods["core"].fresh_noise(eps.shape, 12, 1).double()
    v = lambda z: z.permute(1, 0, 2, 3)[None]
    lpf = _ref_lpf(4, 8, 8)
    dims = (-3, -2, -1)
    spec = lambda z: torch.fft.fftshift(torch.fft.fftn(z, dim=dims), dim=dims)
    ref = torch.fft.ifftn(torch.fft.ifftshift(spec(v(u)) * lpf + spec(v(fresh)) * (1 - lpf), dim=dims), dim=dims).real
    torch.testing.assert_close((rec[1]["x"] - lat) / s0, ref[0].permute(1, 0, 2, 3).float(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["sd15", "wan"])
def test_one_iteration_is_plain_sampling_exactly(mods, sd15, wan, kind):
    model = _model(kind, sd15, wan)
    pos, neg, latent = _world(kind)
    with torch.inference_mode():
        plain = _ksampler(mods, model, 3, pos, neg, latent)
        once = _ksampler(mods, _patch(mods, model, iterations=1), 3, pos, neg, latent)
        three = _ksampler(mods, _patch(mods, model, iterations=3), 3, pos, neg, latent)
    torch.testing.assert_close(once, plain, rtol=0, atol=0)
    assert not torch.allclose(three, plain)


@pytest.mark.parametrize("kind", ["sd15", "wan"])
@pytest.mark.parametrize("iterations,cfg", [(3, 7.5), (2, 1.0)])
def test_model_calls_are_iterations_times_plain_and_one_progress_bar(mods, sd15, wan, kind, iterations, cfg):
    import comfy.utils
    model = _model(kind, sd15, wan)
    pos, neg, latent = _world(kind)
    plain_counts, counts, bars = [], [], []
    with torch.inference_mode():
        _ksampler(mods, count_model_calls(model, plain_counts), 0, pos, neg, latent, cfg=cfg)
        comfy.utils.set_progress_bar_global_hook(lambda v, t, preview=None, node_id=None: bars.append((v, t)))
        try:
            _ksampler(mods, count_model_calls(_patch(mods, model, iterations=iterations), counts), 0, pos, neg,
                      latent, cfg=cfg)
        finally:
            comfy.utils.set_progress_bar_global_hook(None)
    assert len(counts) == iterations * len(plain_counts) and sum(counts) == iterations * sum(plain_counts)
    total = iterations * STEPS
    assert bars[-1] == (total, total)
    assert [v for v, t in bars if t == total] == list(range(1, total + 1))   # one bar over all passes


@pytest.mark.parametrize("kind", ["sd15", "wan"])
def test_patch_form_equals_sampler_form_and_same_seed_same_video(mods, sd15, wan, kind):
    model = _model(kind, sd15, wan)
    pos, neg, latent = _world(kind)
    cs = mods["cs"]
    with torch.inference_mode():
        patched = _patch(mods, model)
        a = _ksampler(mods, patched, 5, pos, neg, latent)
        b = _ksampler(mods, patched, 5, pos, neg, latent)
        c = _ksampler(mods, patched, 6, pos, neg, latent)
        sca = _sca(mods, model, cs.Noise_RandomNoise(5), _fi_sampler(mods, cs.KSamplerSelect().get_sampler("euler")[0]),
                   pos, neg, latent)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    torch.testing.assert_close(sca, a, rtol=1e-5, atol=1e-5)


def test_coarse_to_fine_runs_shorter_passes_under_one_progress_bar(mods, sd15):
    import comfy.utils
    pos, neg, latent = _world("sd15")
    counts, bars = [], []
    comfy.utils.set_progress_bar_global_hook(lambda v, t, preview=None, node_id=None: bars.append((v, t)))
    try:
        with torch.inference_mode():
            _ksampler(mods, count_model_calls(_patch(mods, sd15, iterations=3, c2f=True), counts), 0, pos, neg,
                      latent, steps=6)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert len(counts) == 2 + 4 + 6                     # int(6/3*1), int(6/3*2), 6 steps; one CFG call each
    assert bars[-1] == (12, 12)


def test_v_prediction_model_runs(mods):
    model = tiny_sd15("V_PREDICTION")
    pos, neg, latent = _world("sd15")
    with torch.inference_mode():
        out = _ksampler(mods, _patch(mods, model, iterations=2, filt="gaussian"), 1, pos, neg, latent)
        plain = _ksampler(mods, model, 1, pos, neg, latent)
    assert bool(torch.isfinite(out).all()) and not torch.allclose(out, plain)


# --------------------------------------------------------------------------- composition with noise patches

def _first_start(rec, kind):
    s0 = rec[0]["sigma0"]
    return rec[0]["x"] / (math.sqrt(1 + s0 ** 2) if kind == "sd15" else s0)


@pytest.mark.parametrize("order", ["smoothinit_then_freeinit", "freeinit_then_smoothinit"])
def test_freeinit_starts_from_smoothinit_noise_in_either_patch_order(mods, sd15, order):
    """With SmoothInit (KSampler) and FreeInit on one model, the optimisation runs once (before pass 1)
    and FreeInit's initial noise -- pass 1's start and the noise every pass is re-noised with -- is
    the SmoothInit noise, whichever patch was applied first."""
    pos, neg, latent = _world("sd15")
    si = mods["si"]
    cs = mods["cs"]

    def si_patch(m):
        return si.SmoothInitModelPatch().patch(m, "Fast-SmoothInit (custom)", 7.5, 1.0, 50, 2, 0.05, "uniform", 0.05,
                                               0.05, 0)[0]

    model = _patch(mods, si_patch(sd15)) if order == "smoothinit_then_freeinit" else si_patch(_patch(mods, sd15))
    rec, counts = [], []
    with torch.inference_mode():
        si_noise = si.FastSmoothInitNoise().build(cs.Noise_RandomNoise(4), sd15, pos, neg, 7.5, 1.0, 50, "custom", 2,
                                                  0.05, 0.05, 0.05)[0].generate_noise(latent)
        _sca(mods, count_model_calls(model, counts), cs.Noise_RandomNoise(4), _recording_sampler(mods, rec),
             pos, neg, latent)
    assert len(rec) == 3
    torch.testing.assert_close(_first_start(rec, "sd15"), si_noise, rtol=1e-5, atol=1e-5)
    si_nfe = mods["si"].si.nfe(2, 7.5, 1.0)     # the optimisation, once
    assert sum(counts) == 4 * (si_nfe + 3 * 2 * STEPS)                  # + 3 passes; 4 frames per call
    # pass 2 re-noises with the SmoothInit noise
    core = mods["core"]
    # (plain SD1.5 does not attend across its batch: the 4 images are independent, 2-D FreeInit each)
    ref = _ref_next_noise(si_noise, rec[0]["out"], core.fresh_noise(si_noise.shape, 4, 1), rec[0]["sigma0"], "sd15",
                          batch_frames=False)
    torch.testing.assert_close(rec[1]["x"] / math.sqrt(1 + rec[0]["sigma0"] ** 2), ref.float(), rtol=1e-4, atol=1e-4)


def test_freeinit_sampler_starts_from_a_smoothinit_noise_node_and_dependency_noise_patch(mods, sd15):
    pos, neg, latent = _world("sd15")
    si, zs2, cs = mods["si"], mods["zs2"], mods["cs"]
    with torch.inference_mode():
        noise = si.FastSmoothInitNoise().build(cs.Noise_RandomNoise(8), sd15, pos, neg, 7.5, 1.0, 50, "custom", 2,
                                               0.05, 0.05, 0.05)[0]
        expect = noise.generate_noise(latent)
        rec = []
        _sca(mods, sd15, noise, _fi_sampler(mods, _recording_sampler(mods, rec), iterations=2), pos, neg, latent)
        torch.testing.assert_close(_first_start(rec, "sd15"), expect, rtol=1e-5, atol=1e-5)
        # Dependency Noise (KSampler) patch applied after FreeInit: pass 1 starts from the dependency noise
        dep = zs2.DependencyNoiseModelPatch().patch(_patch(mods, sd15, iterations=2), 0.01, 10, 15, "dependency", 0.9)[0]
        rec2 = []
        _sca(mods, dep, cs.Noise_RandomNoise(8), _recording_sampler(mods, rec2), pos, neg, latent)
    dep_noise = zs2.make_noise("t", latent["samples"].shape, 8, zs2.dn.Settings.from_inputs(0.01, 10, 15,
                                                                                             "dependency", 0.9))
    assert len(rec2) == 2
    torch.testing.assert_close(_first_start(rec2, "sd15"), dep_noise, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- model untouched, interrupt

def _interrupt_after(mods, model, n):
    m = model.clone()
    state = {"calls": 0}

    def trip(executor, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] == n:
            mods["mm"].interrupt_current_processing(True)
        return executor(*args, **kwargs)

    m.add_wrapper_with_key(mods["pe"].WrappersMP.DIFFUSION_MODEL, "test.interrupt", trip)
    return m


@pytest.mark.parametrize("kind", ["sd15", "wan"])
def test_interrupt_in_a_later_pass_leaves_the_model_unpatched_and_the_next_run_correct(mods, sd15, wan, kind):
    model = _model(kind, sd15, wan)
    pos, neg, latent = _world(kind)
    before = _wrappers(model)
    patched = _patch(mods, model)
    with torch.inference_mode():
        fresh = _ksampler(mods, patched, 2, pos, neg, latent)
        plain = _ksampler(mods, model, 2, pos, neg, latent)
        with pytest.raises(mods["mm"].InterruptProcessingException):
            _ksampler(mods, _interrupt_after(mods, patched, 2 * STEPS + 1), 2, pos, neg, latent)   # in pass 2
        again = _ksampler(mods, patched, 2, pos, neg, latent)
        plain_again = _ksampler(mods, model, 2, pos, neg, latent)
    assert not mods["mm"].processing_interrupted()
    assert _wrappers(model) == before and _wrappers(patched) != before
    torch.testing.assert_close(again, fresh, rtol=0, atol=0)
    torch.testing.assert_close(plain_again, plain, rtol=0, atol=0)


# --------------------------------------------------------------------------- documented behaviour, errors

def test_disabled_noise_and_own_loops_pass_through(mods, sd15):
    """KSamplerAdvanced add_noise = disable (all-zero noise) samples once; a FreeInit-patched model fed to
    a SmoothInit NOISE node does not run FreeInit inside the optimisation."""
    pos, neg, _ = _world("sd15")
    latent = {"samples": torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))}
    counts = []
    with torch.inference_mode():
        m = count_model_calls(_patch(mods, sd15), counts)
        mods["nodes"].KSamplerAdvanced().sample(m, "disable", 0, STEPS, 7.5, "euler", "simple", pos, neg, latent, 0,
                                                STEPS, "disable")
        assert len(counts) == STEPS and sum(counts) == 2 * 4 * STEPS     # one pass (cond + uncond batched)
        a = mods["si"].ForwardInversionNoise().build(mods["cs"].Noise_RandomNoise(1), sd15, pos, neg, 7.5, 1.0,
                                                     50)[0].generate_noise(latent)
        b = mods["si"].ForwardInversionNoise().build(mods["cs"].Noise_RandomNoise(1), _patch(mods, sd15), pos, neg,
                                                     7.5, 1.0, 50)[0].generate_noise(latent)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_input_raises_errors_naming_node_and_input(mods, sd15):
    fi = mods["fi"]
    cs = mods["cs"]
    euler = cs.KSamplerSelect().get_sampler("euler")[0]
    with pytest.raises(ValueError, match=r"FreeInit \(KSampler\): iterations must be an integer >= 1"):
        _patch(mods, sd15, iterations=0)
    with pytest.raises(ValueError, match=r"FreeInit Sampler: d_s must be in \(0, 1\]"):
        _fi_sampler(mods, euler, d_s=0.0)
    with pytest.raises(ValueError, match=r"FreeInit Sampler: d_t must be in \(0, 1\]"):
        _fi_sampler(mods, euler, d_t=1.5)
    with pytest.raises(ValueError, match=r"FreeInit \(KSampler\): filter must be one of"):
        _patch(mods, sd15, filt="hann")
    with pytest.raises(ValueError, match="FreeInit Sampler: FreeInit is applied twice"):
        _fi_sampler(mods, _fi_sampler(mods, euler))
    pos, neg, latent = _world("sd15")
    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"FreeInit \(KSampler\): FreeInit is applied twice"):
            _sca(mods, _patch(mods, sd15), cs.Noise_RandomNoise(0), _fi_sampler(mods, euler), pos, neg, latent)
        with pytest.raises(ValueError, match=r"FreeInit \(KSampler\): the sampler stops at sigma .* > 0"):
            mods["nodes"].KSamplerAdvanced().sample(_patch(mods, sd15), "enable", 0, 4, 7.5, "euler", "simple", pos,
                                                    neg, latent, 0, 2, "enable")


def test_nodes_are_registered_with_tooltips_and_cost(mods, pack):
    classes, names = pack.nodes.registry.mappings(mods["fi"].__name__)
    for key, cls in classes.items():
        assert key in pack.NODE_CLASS_MAPPINGS and key in names
        for name, spec in cls.INPUT_TYPES()["required"].items():
            assert spec[1].get("tooltip"), f"{key}.{name} has no tooltip"
        assert "model calls" in cls.DESCRIPTION and "One frame" in cls.DESCRIPTION
        assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
    assert names == {"TFVFreeInitModelPatch": "FreeInit (KSampler)", "TFVFreeInitSampler": "FreeInit Sampler",
                     "TFVFreeInitTwoExperts": "FreeInit (KSampler, two experts)"}


# --------------------------------------------------------------------------- which axis holds the frames
# (issue 14, edges 3 and 4; moved from test_freeinit_frames.py)
# * An image batch is one video's frames only when the model attends across its batch (Temporal
#   Momentum Attention, an AnimateDiff motion model); without such a model the images are independent
#   and each gets 2-D FreeInit on its own, so image 0 of a batch equals a batch-1 run.
# * Qwen-Image latents of one picture frame per batch entry ([F, C, 1, H, W]) are F frames under TMA,
#   as Dependency Noise and TMA see them: FreeInit's low-pass runs across the batch.

SEED = 5


@pytest.fixture(scope="module")
def qwen(pack):
    return tiny_qwen_image(seed=0, num_layers=1, attention_head_dim=32, axes_dims_rope=(8, 12, 12))


def _qwen_conds():
    return qwen_conds(seed=1, tokens=6)


def _freeinit(mods, model, iterations=3):
    return mods["fi"].FreeInitModelPatch().patch(model, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)[0]


def _ksampler_batch(mods, model, batch, seed=SEED):
    pos, neg = sd15_conds()
    lat = {"samples": torch.zeros(batch, 4, 8, 8)}
    with torch.inference_mode():
        return mods["nodes"].KSampler().sample(model, seed, STEPS, 7.5, "euler", "simple", pos, neg, lat)[0]["samples"]


def test_image_batch_without_cross_frame_model_is_independent_images(mods, sd15):
    """No model attends across the batch (plain SD1.5): FreeInit treats a batch of 4 as 4 independent
    images, so image 0 equals the batch-1 run with the same seed (same initial and fresh noise).
    Before, the temporal low-pass over the batch mixed the four images (image 0 differed). With TMA
    the batch is one video's frames and image 0 does depend on the others."""
    m = _freeinit(mods, sd15)
    four, one = _ksampler_batch(mods, m, 4), _ksampler_batch(mods, m, 1)
    scale = float(one.abs().max())                               # random weights: latents of a few hundred
    diff = lambda a, b: float((a - b).abs().max()) / scale
    assert diff(four[:1], one) < 1e-4                             # batch-size rounding only
    plain4, plain1 = _ksampler_batch(mods, sd15, 4), _ksampler_batch(mods, sd15, 1)
    assert diff(plain4[:1], plain1) < 1e-4
    assert diff(four[:1], plain1) > 1e-2                          # FreeInit did act
    # TMA at momentum 0 attends across the batch in name only (mu = 0 is self-attention exactly), so the
    # difference below comes from FreeInit's low-pass over the frames alone
    with torch.inference_mode():
        tma0 = mods["zs2"].TemporalMomentumAttention().patch(sd15, 0.0)[0]
    video4, video1 = _ksampler_batch(mods, _freeinit(mods, tma0), 4), _ksampler_batch(mods, _freeinit(mods, tma0), 1)
    assert diff(video1, one) < 1e-4
    assert diff(video4[:1], video1) > 1e-2


def _qwen_pass_starts(mods, model):
    cs = mods["cs"]
    pos, neg = _qwen_conds()
    lat = {"samples": torch.zeros(4, 16, 1, 8, 8)}
    rec = []
    with torch.inference_mode():
        sampler = mods["fi"].FreeInitSampler().get_sampler(_recording_sampler(mods, rec), 2, "butterworth", 0.25,
                                                            0.25, 4, 0.068)[0]
        guider = cs.CFGGuider().get_guider(model, pos, neg, 3.0)[0]
        sigmas = cs.BasicScheduler().get_sigmas(model, "simple", STEPS, 1.0)[0]
        cs.SamplerCustomAdvanced().sample(cs.Noise_RandomNoise(SEED), guider, sampler, sigmas, lat)
        eps = cs.Noise_RandomNoise(SEED).generate_noise(lat)
    assert len(rec) == 2 and rec[0]["x"].shape == (4, 16, 1, 8, 8)
    return rec, eps


@pytest.mark.parametrize("tma", [True, False])
def test_qwen_image_one_frame_per_batch_entry_is_frames_under_tma(mods, qwen, tma):
    """Qwen-Image [4, 16, 1, H, W] with TMA: FreeInit's pass-2 start is the 3-D (frames, H, W) mix of
    the 4-D latent [4, 16, H, W] with the frames as the batch (before: each entry filtered alone in
    2-D, no temporal low-pass); without TMA the entries are independent images (2-D each)."""
    core = mods["core"]
    model = qwen
    if tma:
        with torch.inference_mode():
            model = mods["zs2"].TemporalMomentumAttention().patch(qwen, 0.98)[0]
    rec, eps = _qwen_pass_starts(mods, model)
    s0 = rec[0]["sigma0"]
    ms = qwen.get_model_object("model_sampling")
    start = rec[1]["x"] / s0                                       # flow: x_T = sigma * n (empty latent)
    flat = lambda z: z[:, :, 0]
    fresh = core.fresh_noise(eps.shape, SEED, 1)
    lpf = core.low_pass_filter((4, 8, 8) if tma else (1, 8, 8), "butterworth")
    ref = core.reinit_noise(ms, s0, flat(eps), flat(rec[0]["out"]), flat(fresh), lpf, None, True,
                            batch_frames=tma)
    torch.testing.assert_close(flat(start), ref, rtol=1e-4, atol=1e-4)
    other = core.reinit_noise(ms, s0, flat(eps), flat(rec[0]["out"]), flat(fresh),
                              core.low_pass_filter((1, 8, 8) if tma else (4, 8, 8), "butterworth"), None, True,
                              batch_frames=not tma)
    assert float((flat(start) - other).abs().max()) > 1e-3          # the two layouts do differ here

"""SmoothInit nodes in the real ComfyUI (tiny random-weight SD1.5 EPS/V and Wan flow models).

Both forms (NOISE nodes for SamplerCustomAdvanced, the "SmoothInit (KSampler)" model patch) give
the same optimised noise for the same seed and conds; model evaluations equal the NFE formula;
interrupt leaves the model usable; errors name the node and input; Save/Load Noise round-trip; the
NOISE nodes' samplings differ from plain sampling. Follow the sampler (issue 7 part 4): the patch's
default cfg is the sampler's CFG, guiders without one (or with their own rule) get a true error, and
perturbations are never stacked along the batch of a model that attends across it.
"""
import os
import re

import pytest
import torch

from comfy_harness import (count_model_calls, empty_latent, io_folders, ksampler_start_noise, sample_custom_advanced,
                           sample_euler, sd15_conds, smoothinit_patch,
                           tiny_sd15, wan_conds)

METHOD_CUSTOM = {"smoothinit": "SmoothInit (custom)", "fast_smoothinit": "Fast-SmoothInit (custom)"}


# --------------------------------------------------------------------------- helpers

def _world(kind):
    if kind == "sd15":
        pos, neg = sd15_conds()
        return pos, neg, {"samples": torch.zeros(1, 4, 16, 16)}
    pos, neg = wan_conds()
    return pos, neg, {"samples": torch.zeros(1, 16, 3, 8, 8)}


def _noise_node(mods, method, base, model, pos, neg, cfg=7.5, inv=1.0, grid=50, K=3, sigma_sm=0.1,
                noise_type="uniform", gamma_m=0.05, gamma_decay=0.05, chunk=0, sigmas=None):
    si = mods["si"]
    if method == "forward_inversion":
        return si.ForwardInversionNoise().build(base, model, pos, neg, cfg, inv, grid, sigmas=sigmas)[0]
    if method == "smoothinit":
        return si.SmoothInitNoise().build(base, model, pos, neg, cfg, inv, grid, "custom", K, sigma_sm, noise_type,
                                          chunk, sigmas=sigmas)[0]
    return si.FastSmoothInitNoise().build(base, model, pos, neg, cfg, inv, grid, "custom", K, sigma_sm, gamma_m,
                                          gamma_decay, sigmas=sigmas)[0]


def _patch(mods, method, model, cfg=7.5, inv=1.0, grid=50, K=3, sigma_sm=0.1, noise_type="uniform", gamma_m=0.05,
           gamma_decay=0.05, chunk=0):
    m = "Forward-Inversion" if method == "forward_inversion" else METHOD_CUSTOM.get(method, method)
    return mods["si"].SmoothInitModelPatch().patch(model, m, cfg, inv, grid, K, sigma_sm, noise_type, gamma_m,
                                                   gamma_decay, chunk)[0]


def _ksampler_noise(mods, model, seed, pos, neg, latent, steps=2, cfg=7.5, scheduler="simple", denoise=1.0):
    """Run KSampler and capture the (possibly replaced) unit noise the sampler starts from."""
    return ksampler_start_noise(model, seed, pos, neg, latent, steps, cfg, scheduler, denoise)


def _wrappers(model):
    """Every wrapper registered on a ModelPatcher (its own table and the model_options one)."""
    out = {}
    for table in (getattr(model, "wrappers", {}), model.model_options.get("transformer_options", {}).get("wrappers", {})):
        for k, v in table.items():
            for kk, vv in v.items():
                out.setdefault((k, kk), []).extend(vv)
    return out


# --------------------------------------------------------------------------- both forms agree

@pytest.mark.parametrize("kind", ["sd15", "wan"])
@pytest.mark.parametrize("method", ["forward_inversion", "smoothinit", "fast_smoothinit"])
def test_noise_node_and_ksampler_patch_give_the_same_noise(mods, sd15, wan, kind, method):
    model = sd15 if kind == "sd15" else wan
    pos, neg, latent = _world(kind)
    with torch.inference_mode():
        base = mods["cs"].Noise_RandomNoise(11)
        node_noise = _noise_node(mods, method, base, model, pos, neg).generate_noise(latent)
        patched = _patch(mods, method, model)
        ks_noise, samples = _ksampler_noise(mods, patched, 11, pos, neg, latent)
        plain = base.generate_noise(latent)
    assert node_noise.device.type == "cpu" and node_noise.dtype == latent["samples"].dtype
    assert node_noise.shape == plain.shape and bool(torch.isfinite(node_noise).all())
    assert bool(torch.isfinite(samples).all())
    assert float((node_noise - plain).norm()) > 1e-3 * float(plain.norm())   # it did optimise
    torch.testing.assert_close(ks_noise, node_noise, rtol=1e-5, atol=1e-5)


def test_the_forms_agree_with_a_scheduler_whose_first_sigma_rounds_differently(mods, sd15):
    pos, neg, latent = _world("sd15")
    with torch.inference_mode():
        node_noise = _noise_node(mods, "fast_smoothinit", mods["cs"].Noise_RandomNoise(5), sd15, pos,
                                 neg).generate_noise(latent)
        ks_noise, _ = _ksampler_noise(mods, _patch(mods, "fast_smoothinit", sd15), 5, pos, neg, latent,
                                      scheduler="normal")
    rel = float((ks_noise - node_noise).norm() / node_noise.norm())
    assert rel < 1e-3, rel


@pytest.mark.parametrize("scheduler,denoise", [("ddim_uniform", 1.0), ("normal", 0.6)])
def test_noise_node_given_the_samplers_sigmas_equals_the_patch(mods, sd15, scheduler, denoise):
    """A schedule that starts below sigma_max (ddim_uniform: 13.1 on SD1.5; denoise < 1) is noised by
    ComfyUI with sigma * n, not sqrt(1 + sigma^2) * n: with the sampler's SIGMAS connected the NOISE
    node optimises at the same sigma_a and scaling as the KSampler patch; without them it would not."""
    import comfy_extras.nodes_custom_sampler as cs
    pos, neg, latent = _world("sd15")
    steps = 4
    sigmas = cs.BasicScheduler().get_sigmas(sd15, scheduler, steps, denoise)
    sigmas = sigmas[0] if isinstance(sigmas, tuple) else sigmas.result[0]
    assert float(sigmas[0]) < float(sd15.get_model_object("model_sampling").sigma_max) - 0.5
    with torch.inference_mode():
        base = mods["cs"].Noise_RandomNoise(7)
        with_sigmas = _noise_node(mods, "fast_smoothinit", base, sd15, pos, neg, sigmas=sigmas).generate_noise(latent)
        without = _noise_node(mods, "fast_smoothinit", base, sd15, pos, neg).generate_noise(latent)
        ks_noise, _ = _ksampler_noise(mods, _patch(mods, "fast_smoothinit", sd15), 7, pos, neg, latent,
                                      steps=steps, scheduler=scheduler, denoise=denoise)
    torch.testing.assert_close(ks_noise, with_sigmas, rtol=1e-5, atol=1e-5)
    assert float((ks_noise - without).abs().max()) > 1e-2


def test_noise_node_rejects_a_schedule_of_one_sigma(mods, sd15):
    pos, neg, _ = _world("sd15")
    with pytest.raises(ValueError, match="Fast-SmoothInit Noise: sigmas"):
        _noise_node(mods, "fast_smoothinit", mods["cs"].Noise_RandomNoise(0), sd15, pos, neg,
                    sigmas=torch.tensor([14.6]))


def test_same_seed_same_noise_and_seed_changes_perturbations(mods, sd15):
    pos, neg, latent = _world("sd15")
    with torch.inference_mode():
        a = _noise_node(mods, "smoothinit", mods["cs"].Noise_RandomNoise(1), sd15, pos, neg).generate_noise(latent)
        b = _noise_node(mods, "smoothinit", mods["cs"].Noise_RandomNoise(1), sd15, pos, neg).generate_noise(latent)
        c = _noise_node(mods, "smoothinit", mods["cs"].Noise_RandomNoise(2), sd15, pos, neg).generate_noise(latent)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


# --------------------------------------------------------------------------- NFE

@pytest.mark.parametrize("kind", ["sd15", "wan"])
@pytest.mark.parametrize("method,K,chunk,cfg,inv", [
    ("forward_inversion", 1, 0, 7.5, 1.0),
    ("smoothinit", 5, 4, 7.5, 1.0),         # batched: 4 + 1
    ("smoothinit", 3, 1, 7.5, 7.5),         # unbatched, both CFG
    ("fast_smoothinit", 4, 0, 1.0, 1.0),    # cfg exactly 1: one conditional call each
])
def test_model_evaluations_equal_the_nfe_formula(mods, sd15, wan, kind, method, K, chunk, cfg, inv):
    import comfy.utils
    model = sd15 if kind == "sd15" else wan
    pos, neg, latent = _world(kind)
    core = mods["si_core"]
    counts, bars = [], []
    counted = count_model_calls(model, counts)
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview=None, node_id=None: bars.append((value, total)))
    try:
        with torch.inference_mode():
            _noise_node(mods, method, mods["cs"].Noise_RandomNoise(0), counted, pos, neg, cfg, inv, K=K,
                        chunk=chunk).generate_noise(latent)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    expect = core.nfe(K, cfg, inv)
    assert sum(counts) // latent["samples"].shape[0] == expect
    if method == "smoothinit" and chunk == 4:
        assert max(counts) >= 4 * 2          # batched: 4 perturbations x (cond + uncond) in one call
    assert bars and bars[-1] == (expect, expect)        # one bar over all model calls, reaching its total
    assert [v for v, _ in bars] == sorted(v for v, _ in bars)


def test_ksampler_patch_costs_the_formula_plus_sampling(mods, sd15):
    pos, neg, latent = _world("sd15")
    counts = []
    m = count_model_calls(_patch(mods, "fast_smoothinit", sd15, K=4), counts)
    with torch.inference_mode():
        mods["nodes"].KSampler().sample(m, 0, 3, 7.5, "euler", "simple", pos, neg, latent)
    assert sum(counts) == mods["si_core"].nfe(4, 7.5, 1.0) + 3 * 2


def test_auto_chunk_batches_only_independent_samples(mods):
    """auto (0): 1 on the CPU (batching measured slower there), 4 on an accelerator; an explicit
    size is used, except for 4-D latents with batch > 1 (frames as batch), which always get 1."""
    auto_chunk = mods["si"].auto_chunk
    assert auto_chunk(0, (1, 4, 8, 8), "cpu") == 1
    assert auto_chunk(0, (1, 16, 5, 8, 8), "cpu") == 1
    assert auto_chunk(0, (1, 4, 8, 8), "cuda:0") == 4
    assert auto_chunk(0, (1, 16, 5, 8, 8), "cuda") == 4
    assert auto_chunk(0, (8, 4, 8, 8), "cuda") == 1
    assert auto_chunk(3, (1, 4, 8, 8), "cpu") == 3
    assert auto_chunk(3, (2, 16, 5, 8, 8), "cpu") == 3
    assert auto_chunk(3, (8, 4, 8, 8), "cpu") == 1


def test_explicit_chunk_on_frames_as_batch_with_tma_gives_the_unbatched_result(mods, sd15):
    """With Temporal Momentum Attention the frames of a 4-D latent attend to each other, so batching
    perturbations along the batch would mix them; the node keeps one perturbation per call."""
    import nodes
    tma = nodes.NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(sd15, 0.9)[0]
    pos, neg, _ = _world("sd15")
    latent = {"samples": torch.zeros(3, 4, 8, 8)}
    with torch.inference_mode():
        base = mods["cs"].Noise_RandomNoise(5)
        one = _noise_node(mods, "smoothinit", base, tma, pos, neg, K=4, chunk=1).generate_noise(latent)
        four = _noise_node(mods, "smoothinit", base, tma, pos, neg, K=4, chunk=4).generate_noise(latent)
    torch.testing.assert_close(one, four, rtol=1e-5, atol=1e-5)


def test_frames_as_batch_latent_is_not_batched_by_default(mods, sd15):
    """A 4-D latent with batch > 1 may be one video (AnimateDiff): auto chunk = 1 perturbation per call.
    For an image model any chunk gives the same result."""
    pos, neg, _ = _world("sd15")
    latent = {"samples": torch.zeros(3, 4, 8, 8)}
    counts = []
    with torch.inference_mode():
        base = mods["cs"].Noise_RandomNoise(4)
        auto = _noise_node(mods, "smoothinit", base, count_model_calls(sd15, counts), pos, neg,
                           K=3).generate_noise(latent)
        batched = _noise_node(mods, "smoothinit", base, sd15, pos, neg, K=3, chunk=3).generate_noise(latent)
    assert max(counts) <= 2 * 3
    torch.testing.assert_close(auto, batched, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- model families, img2img

def _assert_optimised_and_not_plain(mods, noise, model, pos, neg, latent, cfg, result, seed=3, steps=2):
    """The NOISE node's noise is not the incoming seed's plain noise, and the SamplerCustomAdvanced result
    differs from plain sampling (KSampler, same seed, sampler, scheduler, steps and CFG): a node that
    passed the noise through would fail both."""
    plain_noise = mods["cs"].Noise_RandomNoise(seed).generate_noise(latent)
    assert not torch.allclose(noise.generate_noise(latent), plain_noise, rtol=0, atol=1e-3)
    plain = mods["nodes"].KSampler().sample(model, seed, steps, cfg, "euler", "simple", pos, neg, latent)[0]
    assert float((result - plain["samples"]).abs().max()) > 1e-2


@pytest.mark.parametrize("model_type", ["EPS", "V_PREDICTION"])
def test_sd15_families_run_through_sampler_custom_advanced(mods, model_type):
    model = tiny_sd15(model_type)
    pos, neg, latent = _world("sd15")
    cs = mods["cs"]
    with torch.inference_mode():
        noise = _noise_node(mods, "fast_smoothinit", cs.Noise_RandomNoise(3), model, pos, neg, K=2)
        guider = cs.CFGGuider().get_guider(model, pos, neg, 7.5)[0]
        sigmas = cs.BasicScheduler().get_sigmas(model, "simple", 2, 1.0)[0]
        sampler = cs.KSamplerSelect().get_sampler("euler")[0]
        out = sample_custom_advanced(noise, guider, sampler, sigmas, latent)
        assert bool(torch.isfinite(out["samples"]).all())
        _assert_optimised_and_not_plain(mods, noise, model, pos, neg, latent, 7.5, out["samples"])


def test_wan_flow_runs_through_sampler_custom_advanced(mods, wan):
    pos, neg, latent = _world("wan")
    cs = mods["cs"]
    with torch.inference_mode():
        noise = _noise_node(mods, "smoothinit", cs.Noise_RandomNoise(3), wan, pos, neg, K=2)
        guider = cs.CFGGuider().get_guider(wan, pos, neg, 5.0)[0]
        sigmas = cs.BasicScheduler().get_sigmas(wan, "simple", 2, 1.0)[0]
        sampler = cs.KSamplerSelect().get_sampler("euler")[0]
        res = sample_custom_advanced(noise, guider, sampler, sigmas, latent)
        assert bool(torch.isfinite(res["samples"]).all())
        _assert_optimised_and_not_plain(mods, noise, wan, pos, neg, latent, 5.0, res["samples"])


def test_ksampler_patch_img2img_and_disabled_noise(mods, sd15):
    pos, neg, _ = _world("sd15")
    latent = {"samples": torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))}
    with torch.inference_mode():
        patched = _patch(mods, "fast_smoothinit", sd15, K=2)
        noise, out = _ksampler_noise(mods, patched, 8, pos, neg, latent, steps=4, denoise=0.5)
        plain, _ = _ksampler_noise(mods, sd15, 8, pos, neg, latent, steps=4, denoise=0.5)
        assert bool(torch.isfinite(out).all()) and not torch.allclose(noise, plain)
        # KSamplerAdvanced add_noise disable: all-zero noise is left alone (no optimisation calls)
        counts = []
        m = count_model_calls(patched, counts)
        mods["nodes"].KSamplerAdvanced().sample(m, "disable", 0, 2, 7.5, "euler", "simple", pos, neg, latent, 0, 2,
                                                "disable")
    assert sum(counts) == 2 * 2


def test_patched_model_fed_to_a_noise_node_does_not_optimise_twice(mods, sd15):
    pos, neg, latent = _world("sd15")
    with torch.inference_mode():
        base = mods["cs"].Noise_RandomNoise(6)
        a = _noise_node(mods, "fast_smoothinit", base, sd15, pos, neg, K=2).generate_noise(latent)
        b = _noise_node(mods, "fast_smoothinit", base, _patch(mods, "smoothinit", sd15, K=2), pos, neg,
                        K=2).generate_noise(latent)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- model not mutated, interrupt

def test_input_model_is_not_mutated(mods, sd15):
    pos, neg, latent = _world("sd15")
    before_wrappers = _wrappers(sd15)
    before_state = {k: v.clone() for k, v in sd15.model.diffusion_model.state_dict().items()}
    with torch.inference_mode():
        patched = _patch(mods, "smoothinit", sd15, K=2)
        _noise_node(mods, "smoothinit", mods["cs"].Noise_RandomNoise(0), sd15, pos, neg, K=2).generate_noise(latent)
        _ksampler_noise(mods, patched, 0, pos, neg, latent)
    assert patched is not sd15 and _wrappers(patched) != before_wrappers
    assert _wrappers(sd15) == before_wrappers
    after = sd15.model.diffusion_model.state_dict()
    assert all(torch.equal(before_state[k], after[k]) for k in before_state)


def _interrupt_after(mods, model, n):
    """Clone whose n-th network call raises ComfyUI's interrupt at the next check."""
    import comfy.model_management
    m = model.clone()
    state = {"calls": 0}

    def trip(executor, *args, **kwargs):
        state["calls"] += 1
        if state["calls"] == n:
            comfy.model_management.interrupt_current_processing(True)
        return executor(*args, **kwargs)

    m.add_wrapper_with_key(mods["pe"].WrappersMP.DIFFUSION_MODEL, "test.interrupt", trip)
    return m


@pytest.mark.parametrize("form", ["noise_node", "ksampler_patch"])
def test_interrupt_stops_the_optimisation_and_the_next_run_is_correct(mods, sd15, form):
    import comfy.model_management
    pos, neg, latent = _world("sd15")
    with torch.inference_mode():
        if form == "noise_node":
            fresh = _noise_node(mods, "fast_smoothinit", mods["cs"].Noise_RandomNoise(2), sd15, pos,
                                neg).generate_noise(latent)
            node = _noise_node(mods, "fast_smoothinit", mods["cs"].Noise_RandomNoise(2), _interrupt_after(mods, sd15, 2),
                               pos, neg)
            with pytest.raises(comfy.model_management.InterruptProcessingException):
                node.generate_noise(latent)
            again = node.generate_noise(latent)          # same object, next run
        else:
            patched = _patch(mods, "fast_smoothinit", sd15)
            fresh, _ = _ksampler_noise(mods, patched, 2, pos, neg, latent)
            with pytest.raises(comfy.model_management.InterruptProcessingException):
                _ksampler_noise(mods, _interrupt_after(mods, patched, 2), 2, pos, neg, latent)
            again, _ = _ksampler_noise(mods, patched, 2, pos, neg, latent)
    assert not comfy.model_management.processing_interrupted()
    torch.testing.assert_close(again, fresh, rtol=0, atol=0)


# --------------------------------------------------------------------------- errors

def test_bad_parameters_raise_errors_naming_node_and_input(mods, sd15):
    si = mods["si"]
    pos, neg, _ = _world("sd15")
    base = mods["cs"].Noise_RandomNoise(0)
    with pytest.raises(ValueError, match="SmoothInit Noise: sigma_sm must be"):
        si.SmoothInitNoise().build(base, sd15, pos, neg, 7.5, 1.0, 50, "custom", 3, -0.1, "uniform", 0)
    with pytest.raises(ValueError, match="Fast-SmoothInit Noise: K must be an integer >= 1"):
        si.FastSmoothInitNoise().build(base, sd15, pos, neg, 7.5, 1.0, 50, "custom", 0, 0.05, 0.05, 0.05)
    with pytest.raises(ValueError, match="Forward-Inversion Noise: grid_steps must be >= 2"):
        si.ForwardInversionNoise().build(base, sd15, pos, neg, 7.5, 1.0, 1)
    with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): sigma_sm must be"):
        si.SmoothInitModelPatch().patch(sd15, "SmoothInit (custom)", 7.5, 1.0, 50, 3, -1.0, "uniform", 0.05, 0.05, 0)
    with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): K must be"):
        si.SmoothInitModelPatch().patch(sd15, "Fast-SmoothInit (custom)", 7.5, 1.0, 50, 0, 0.1, "uniform", 0.05, 0.05, 0)
    with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): grid_steps must be >= 2"):
        si.SmoothInitModelPatch().patch(sd15, "SmoothInit-30", 7.5, 1.0, 1, 3, 0.1, "uniform", 0.05, 0.05, 0)
    with pytest.raises(ValueError, match="SmoothInit Noise: chunk_size must be >= 0"):
        si.SmoothInitNoise().build(base, sd15, pos, neg, 7.5, 1.0, 50, "custom", 3, 0.1, "uniform", -1)


def test_nan_noise_and_batch_mismatch_raise_errors_naming_node_and_input(mods, sd15):
    si = mods["si"]
    pos, neg, latent = _world("sd15")
    bad = torch.randn(1, 4, 16, 16)
    bad[0, 0, 0, 0] = float("nan")
    nan_noise = si.TensorNoise(bad, 0)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="SmoothInit Noise: the incoming noise contains 1 NaN"):
            _noise_node(mods, "smoothinit", nan_noise, sd15, pos, neg).generate_noise(latent)
        pos2 = [[torch.randn(2, 7, 16), {}]]
        lat3 = {"samples": torch.zeros(3, 4, 8, 8)}
        with pytest.raises(ValueError, match="Fast-SmoothInit Noise: the latent has batch 3 but the positive "
                                             "conditioning has batch 2"):
            _noise_node(mods, "fast_smoothinit", mods["cs"].Noise_RandomNoise(0), sd15, pos2, neg).generate_noise(lat3)
        with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): the latent has batch 3 but the positive"):
            mods["nodes"].KSampler().sample(_patch(mods, "fast_smoothinit", sd15), 0, 2, 7.5, "euler", "simple", pos2,
                                            neg, lat3)
        # matching batch > 1 conds are fine
        lat2 = {"samples": torch.zeros(2, 4, 8, 8)}
        out = _noise_node(mods, "forward_inversion", mods["cs"].Noise_RandomNoise(0), sd15, pos2, neg).generate_noise(
            lat2)
        plain = mods["cs"].Noise_RandomNoise(0).generate_noise(lat2)
    assert bool(torch.isfinite(out).all())
    assert not torch.allclose(out, plain, rtol=0, atol=1e-3)  # the inversion ran (cfg 7.5 != inversion_cfg 1)


def test_patch_refuses_a_guider_that_ignores_cfg(mods, sd15):
    """BasicGuider has no negative: a cfg != 1 cannot be applied, so a clear error, not a silent wrong noise."""
    cs = mods["cs"]
    pos, _, latent = _world("sd15")

    def run(model):
        return sample_euler(cs.BasicGuider().get_guider(model, pos)[0], model, latent, 2)

    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): cfg / inversion_cfg: the sampler's guider "
                                             r"\(Guider_Basic\)"):
            run(_patch(mods, "fast_smoothinit", sd15, K=2))
        out = run(_patch(mods, "fast_smoothinit", sd15, cfg=1.0, inv=1.0, K=2))
    assert bool(torch.isfinite(out).all())


# --------------------------------------------------------------------------- Save / Load Noise

def test_save_and_load_noise_round_trip(mods, sd15, tmp_path):
    si = mods["si"]
    out_dir, in_dir = tmp_path / "output", tmp_path / "input"
    with io_folders(in_dir, out_dir):
        pos, neg, latent = _world("sd15")
        with torch.inference_mode():
            noise = _noise_node(mods, "fast_smoothinit", mods["cs"].Noise_RandomNoise(9), sd15, pos, neg, K=2)
            expect = noise.generate_noise(latent)
            res = si.SaveNoise().save(noise, latent, "noise/test")
        rel = res["ui"]["text"][0]
        saved = out_dir / rel
        assert saved.is_file() and saved.suffix == ".safetensors" and str(saved.resolve()).startswith(str(out_dir))
        torch.testing.assert_close(res["result"][0].generate_noise(latent), expect, rtol=0, atol=0)
        with torch.inference_mode():                       # a second save does not overwrite
            rel2 = si.SaveNoise().save(noise, latent, "noise/test")["ui"]["text"][0]
        assert rel2 != rel
        (in_dir / "shared").mkdir()
        (in_dir / "shared" / "n.safetensors").write_bytes(saved.read_bytes())
        assert "shared/n.safetensors" in si.LoadNoise.INPUT_TYPES()["required"]["noise_file"][0]
        assert si.LoadNoise.VALIDATE_INPUTS("shared/n.safetensors") is True
        loaded = si.LoadNoise().load("shared/n.safetensors")[0]
        assert loaded.seed == 9
        torch.testing.assert_close(loaded.generate_noise(latent), expect, rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"Load Noise: the noise .* has shape \(1, 4, 16, 16\) but the sampler's "
                                             r"latent has shape \(1, 4, 8, 8\)"):
            loaded.generate_noise({"samples": torch.zeros(1, 4, 8, 8)})
        # only inside the output / input folders
        for prefix in ("../escape", "/tmp/escape", "a/../../escape", ""):
            with pytest.raises(ValueError, match="Save Noise: filename_prefix"):
                si.SaveNoise().save(noise, latent, prefix)
        (tmp_path / "outside.safetensors").write_bytes(saved.read_bytes())
        with pytest.raises(ValueError, match="Load Noise: noise_file '../outside.safetensors' points outside"):
            si.LoadNoise().load("../outside.safetensors")
        assert si.LoadNoise.VALIDATE_INPUTS("missing.safetensors") != True  # noqa: E712
        assert not list(tmp_path.glob("escape*")) and not os.path.exists("/tmp/escape_00001_.safetensors")


def test_nodes_are_registered_with_tooltips_and_nfe_in_descriptions(mods, pack):
    si = mods["si"]
    classes, names = pack.nodes.registry.mappings(si.__name__)
    for key, cls in classes.items():
        assert key in pack.NODE_CLASS_MAPPINGS and key in names
        for name, spec in cls.INPUT_TYPES()["required"].items():
            assert spec[1].get("tooltip"), f"{key}.{name} has no tooltip"
        assert cls.DESCRIPTION and len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
    for key in ("SmoothInitNoise", "FastSmoothInitNoise", "SmoothInitModelPatch", "ForwardInversionNoise"):
        assert "model calls" in classes[key].DESCRIPTION
    assert names["SmoothInitModelPatch"] == "SmoothInit (KSampler)"


# --------------------------------------------------------------------------- follow the sampler (issue 7 part 4)
# (moved from test_follow_the_sampler.py, now test_comfy_bridge.py) SmoothInit (KSampler): the DDIM step's
# CFG (w1) is the sampler's own CFG by default (cfg 0), an explicit value is used as given; guiders
# without a CFG scale or with their own rule get a true error; SmoothInit never stacks perturbations along
# the batch of a model that attends across the batch (Temporal Momentum Attention), whatever the batch size.

FOLLOW = 0.0


def _follow_noise_node(mods, model, seed, cfg, K=2, chunk=0):
    pos, neg = sd15_conds()
    return mods["si"].SmoothInitNoise().build(mods["cs"].Noise_RandomNoise(seed), model, pos, neg, cfg, 1.0, 50,
                                              "custom", K, 0.1, "uniform", chunk)[0]


def _follow_ksampler_noise(mods, model, seed, latent, cfg, steps=1):
    """KSampler's (possibly replaced) starting unit noise, captured by an innermost wrapper."""
    pos, neg = sd15_conds()
    return ksampler_start_noise(model, seed, pos, neg, latent, steps, cfg)


def test_default_patch_uses_the_ksamplers_cfg(mods, sd15):
    """KSampler at CFG 5 with the default patch (cfg 0) starts from the NOISE node's noise at cfg 5,
    not at the paper's 7.5; an explicit cfg is used as given."""
    latent = empty_latent()
    with torch.inference_mode():
        followed, _ = _follow_ksampler_noise(mods, smoothinit_patch(mods["si"], sd15), 3, latent, cfg=5.0)
        explicit, _ = _follow_ksampler_noise(mods, smoothinit_patch(mods["si"], sd15, cfg=7.5), 3, latent, cfg=5.0)
        at5 = _follow_noise_node(mods, sd15, 3, 5.0).generate_noise(latent)
        at75 = _follow_noise_node(mods, sd15, 3, 7.5).generate_noise(latent)
    assert float((at5 - at75).abs().max()) > 1e-3  # the CFG of the DDIM step matters
    torch.testing.assert_close(followed, at5, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(explicit, at75, rtol=1e-5, atol=1e-5)


def test_default_patch_under_a_guider_without_cfg_stops_with_an_error(mods, sd15):
    """BasicGuider applies no CFG scale: following it would give w1 = 1 = inversion_cfg, a Forward-
    Inversion that injects nothing (issue 14 part 2), so the default patch stops with an error naming the
    node and the cfg input; an explicit cfg 1 is still run as given."""
    cs = mods["cs"]
    pos, _ = sd15_conds()
    latent = empty_latent()

    def run(model):
        return sample_euler(cs.BasicGuider().get_guider(model, pos)[0], model, latent, 1)

    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): cfg is 0 \(follow the sampler\) but the "
                                             r"sampler.s guider \(\w+\) has no negative prompt"):
            run(smoothinit_patch(mods["si"], sd15))
        assert torch.isfinite(run(smoothinit_patch(mods["si"], sd15, cfg=1.0))).all()


def _own_rule_guider(model, which):
    """A guider with a negative prompt and its own predict_noise (ComfyUI's own classes)."""
    pos, neg = sd15_conds()
    middle, _ = sd15_conds(seed=1)
    if which == "dual":
        import comfy_extras.nodes_custom_sampler as cs
        guider = cs.Guider_DualCFG(model)
        guider.set_conds(pos, middle, neg)
        guider.set_cfg(8.0, 6.0)
    else:
        import comfy_extras.nodes_perpneg as pn
        guider = pn.Guider_PerpNeg(model)
        guider.set_conds(pos, neg, middle)
        guider.set_cfg(8.0, 1.5)
    return guider


@pytest.mark.parametrize("which,rule", [("dual", r"cfg_conds 8, cfg_cond2_negative 6"),
                                        ("perpneg", r"cfg 8, neg_scale 1\.5")])
def test_guider_with_its_own_rule_gets_a_true_message(mods, sd15, which, rule):
    """DualCFGGuider and PerpNegGuider HAVE a negative prompt (issue 20 item 7): the follow-the-sampler
    error says that the guider combines its conds with its own rule (and gives that rule's scales),
    not that it "applies no CFG (no negative prompt)"; so does the explicit-cfg refusal."""
    cs = mods["cs"]
    latent = empty_latent()

    def run(model):
        return sample_euler(_own_rule_guider(model, which), model, latent, 1)

    with torch.inference_mode():
        with pytest.raises(ValueError) as follow:
            run(smoothinit_patch(mods["si"], sd15))
        with pytest.raises(ValueError) as explicit:
            run(smoothinit_patch(mods["si"], sd15, cfg=7.5))
        assert torch.isfinite(run(smoothinit_patch(mods["si"], sd15, cfg=1.0))).all()  # cfg 1 = inversion_cfg 1: runs as given
    for e in (follow, explicit):
        msg = str(e.value)
        assert "no negative" not in msg and "applies no CFG" not in msg and "does not apply a CFG" not in msg
        assert "has a negative prompt" in msg and "own rule" in msg
        assert re.search(rule, msg), msg
        assert "KSampler / CFGGuider" in msg
    assert str(follow.value).startswith("SmoothInit (KSampler): cfg is 0 (follow the sampler)")
    assert "w1 = 1 = inversion_cfg" in str(follow.value)


def test_patch_cfg_widget_defaults_to_following_the_sampler(mods):
    spec = mods["si"].SmoothInitModelPatch.INPUT_TYPES()["required"]["cfg"][1]
    assert spec["default"] == FOLLOW and "follow" in spec["tooltip"]
    noise_spec = mods["si"].SmoothInitNoise.INPUT_TYPES()["required"]["cfg"][1]
    assert noise_spec["default"] == 7.5  # no sampler to follow: explicit


@pytest.mark.parametrize("form", ["noise_node", "ksampler_patch"])
def test_tma_batch_1_explicit_chunk_does_not_mix_perturbations(mods, sd15, form):
    """Batch 1 (one frame) with TMA and chunk_size 4: four perturbations stacked along the batch
    would be averaged by TMA as if they were frames; the result must equal one perturbation per call."""
    tma = mods["nodes"].NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(sd15, 0.9)[0]
    latent = empty_latent(batch=1)
    counts = []

    def counted(model):
        return count_model_calls(model, counts)

    with torch.inference_mode():
        if form == "noise_node":
            one = _follow_noise_node(mods, tma, 9, 7.5, K=4, chunk=1).generate_noise(latent)
            four = _follow_noise_node(mods, counted(tma), 9, 7.5, K=4, chunk=4).generate_noise(latent)
        else:
            one, _ = _follow_ksampler_noise(mods, smoothinit_patch(mods["si"], tma, K=4, chunk=1), 9, latent, cfg=7.5)
            four, _ = _follow_ksampler_noise(mods, counted(smoothinit_patch(mods["si"], tma, K=4, chunk=4)), 9, latent, cfg=7.5)
    assert max(counts) <= 2  # one perturbation x (cond + uncond) per call
    torch.testing.assert_close(one, four, rtol=1e-5, atol=1e-5)


def test_auto_chunk_rule(mods):
    auto_chunk = mods["si"].auto_chunk
    assert auto_chunk(4, (1, 4, 8, 8), "cpu") == 4
    assert auto_chunk(4, (1, 4, 8, 8), "cpu", attends_across_batch=True) == 1
    assert auto_chunk(0, (1, 4, 8, 8), "cuda", attends_across_batch=True) == 1
    assert auto_chunk(4, (1, 16, 3, 8, 8), "cuda", attends_across_batch=True) == 1

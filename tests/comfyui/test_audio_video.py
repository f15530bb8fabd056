"""Audio+video (nested) latents through the pack's nodes (issue 19 item 1), on tiny random-weight MiniMax H3
and LTX-2 (LTXAV) models of ComfyUI's real classes (``tiny_av``). ComfyUIs without these families (0.3.64)
skip with the reason (feature detection: ``tiny_av.av_missing_reason``)."""
import pytest
import torch

import comfy_harness as H
import tiny_av

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def av(pack):
    reason = tiny_av.av_missing_reason()
    if reason:
        pytest.skip(reason)
    yield
    tiny_av.release_cached_models()


@pytest.fixture(scope="module")
def cs(av):
    import comfy_extras.nodes_custom_sampler as cs
    return cs


def _r(out):
    return out.result if hasattr(out, "result") else out


def _guider(model, conds, cfg):
    import comfy.samplers
    g = comfy.samplers.CFGGuider(model)
    g.set_conds(conds[0], conds[1])
    g.set_cfg(cfg)
    return g


def _sigmas(model, steps):
    import comfy.samplers
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", steps).cpu()


def euler():
    """ComfyUI's euler SAMPLER (what KSamplerSelect gives)."""
    import comfy.samplers
    return comfy.samplers.sampler_object("euler")


def _stock(cs, model, conds, latent, seed=0, steps=4, cfg=3.0):
    return _sca(cs, model, conds, latent, euler(), seed=seed, steps=steps, cfg=cfg)


@pytest.mark.parametrize("family", ["minimax_h3", "ltxav"])
def test_tiny_av_model_samples_stock_sampler_custom_advanced(cs, family):
    """The tiny models are real: the stock SamplerCustomAdvanced samples their nested latent, both streams
    come back in their own shapes, finite, and depend on the seed."""
    if family == "minimax_h3":
        model, conds, latent = tiny_av.tiny_minimax_h3(), tiny_av.minimax_conds(), tiny_av.minimax_latent()
        import comfy.model_base
        assert model.model.model_type == comfy.model_base.ModelType.FLOW_AV
        assert model.get_model_object("model_sampling").audio_scale == pytest.approx(4.0)
    else:
        model, conds, latent = tiny_av.tiny_ltxav(), tiny_av.ltxav_conds(), tiny_av.ltxav_latent()
    shapes = [t.shape for t in latent["samples"].unbind()]
    a = _stock(cs, model, conds, latent, seed=0)["samples"].unbind()
    b = _stock(cs, model, conds, latent, seed=1)["samples"].unbind()
    assert [t.shape for t in a] == shapes
    for x, y in zip(a, b):
        assert torch.isfinite(x).all() and x.std() > 0.1
        assert not torch.allclose(x, y)


def test_tiny_ltx_audio_vae_decodes_a_latent(av):
    """The tiny LTX-2 audio VAE is the real one: LTXVAudioVAEDecode turns the audio stream into a stereo waveform."""
    import comfy_extras.nodes_lt_audio as la
    latent = tiny_av.ltxav_latent()
    audio = _r(la.LTXVAudioVAEDecode.execute({"samples": torch.randn_like(latent["samples"].unbind()[1])},
                                             tiny_av.tiny_ltx_audio_vae()))[0]
    assert audio["waveform"].shape[:2] == (1, 2) and audio["sample_rate"] == 16000


# =========================================================================== FreeInit


class Capture:
    """A SAMPLER around ComfyUI's euler that records each run's unit noise, processed latent and mask
    (FreeInit runs its inner sampler once per pass). Built lazily: comfy.samplers is ComfyUI's."""

    def __new__(cls):
        import comfy.samplers

        class _Capture(comfy.samplers.Sampler):
            def __init__(self):
                self.inner = euler()
                self.runs = []

            def max_denoise(self, model_wrap, sigmas):
                return self.inner.max_denoise(model_wrap, sigmas)

            def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                       disable_pbar=False):
                out = self.inner.sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask,
                                        disable_pbar)
                self.runs.append({"noise": noise.clone(), "latent": latent_image.clone(), "out": out.clone(),
                                  "mask": None if denoise_mask is None else denoise_mask.clone(),
                                  "shapes": getattr(model_wrap.inner_model, "latent_shapes", None)})
                return out
        return _Capture()


def count_calls(model, counts: list):
    """``model`` cloned with a DIFFUSION_MODEL wrapper appending the batch size of each network call (the
    audio+video DiTs get a list of streams)."""
    import comfy.patcher_extension
    m = model.clone()

    def counter(executor, *args, **kwargs):
        x = args[0]
        counts.append(int((x[0] if isinstance(x, (list, tuple)) else x).shape[0]))
        return executor(*args, **kwargs)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.count", counter)
    return m


def _model(family):
    if family == "minimax_h3":
        return tiny_av.tiny_minimax_h3(), tiny_av.minimax_conds(), tiny_av.minimax_latent()
    return tiny_av.tiny_ltxav(), tiny_av.ltxav_conds(), tiny_av.ltxav_latent()


def _sca(cs, model, conds, latent, sampler, seed=0, steps=4, cfg=3.0, noise=None):
    """SamplerCustomAdvanced (CFGGuider, ``sampler``, simple schedule, RandomNoise(seed) unless ``noise``)."""
    return H.sample_custom_advanced(noise or cs.Noise_RandomNoise(seed), _guider(model, conds, cfg), sampler,
                                    _sigmas(model, steps), latent)


def _freeinit_sampler(pack, inner, iterations=2, audio="keep initial noise", d_t=0.25):
    fi = H.pack_module(pack, "nodes.freeinit")
    return fi.FreeInitSampler().get_sampler(inner, iterations, "butterworth", 0.25, d_t, 4, 0.05, False, audio)[0]


def _streams(packed, shapes):
    import comfy.utils
    return comfy.utils.unpack_latents(packed, shapes)


@pytest.mark.parametrize("family", ["minimax_h3", "ltxav"])
@pytest.mark.parametrize("audio", ["keep initial noise", "low-pass along time"])
def test_freeinit_sampler_on_audio_video(pack, cs, family, audio):
    """FreeInit Sampler, 2 iterations, on a nested audio+video latent: 2 stock samplings (NFE 2 x 4 steps x 2
    = 16); pass 1 starts from the video's FreeInit mix (differs from the initial noise) and, per the audio
    input, the audio's own initial noise or its 1-D low-pass mix (differs); both streams keep their
    shapes; the output is the stock sampling of pass 1's start noise."""
    model, conds, latent = _model(family)
    counts = []
    cap = Capture()
    out = _sca(cs, count_calls(model, counts), conds, latent, _freeinit_sampler(pack, cap, audio=audio))
    assert len(cap.runs) == 2 and sum(counts) == 16
    shapes = cap.runs[0]["shapes"]
    assert [tuple(s) for s in shapes] == [tuple(t.shape) for t in latent["samples"].unbind()]
    n0, n1 = _streams(cap.runs[0]["noise"], shapes), _streams(cap.runs[1]["noise"], shapes)
    assert not torch.allclose(n0[0], n1[0])
    if audio == "keep initial noise":
        assert torch.equal(n0[1], n1[1])
    else:
        assert not torch.allclose(n0[1], n1[1], atol=1e-3)
    got = [t for t in out["samples"].unbind()]
    assert [t.shape for t in got] == [t.shape for t in latent["samples"].unbind()]
    # pass 1 is a stock sampling of its start noise: replay it through SamplerCustomAdvanced
    start = cap.runs[1]["noise"]

    class Fixed:
        seed = 0

        def generate_noise(self, input_latent):
            import comfy.nested_tensor
            return comfy.nested_tensor.NestedTensor(_streams(start, shapes))
    ref = _sca(cs, model, conds, latent, euler(), noise=Fixed())
    for a, b in zip(got, ref["samples"].unbind()):
        assert torch.allclose(a, b, atol=1e-5)


def test_freeinit_audio_low_pass_renoises_in_comfyuis_audio_space(pack, cs):
    """MiniMax H3's audio stream is carried at audio_scale (shift 12 / audio shift 3 = 4) x the audio latent
    on the video schedule. FreeInit's low-pass audio start of pass 1 equals the core re-noising of pass 0's
    stock output mapped in with ComfyUI's own process_latent_in (the scale) -- and not of the unscaled one."""
    fic = H.pack_module(pack, "samplers.freeinit")
    model, conds, latent = _model("minimax_h3")
    cap = Capture()
    _sca(cs, model, conds, latent, _freeinit_sampler(pack, cap, audio="low-pass along time", d_t=0.5))
    shapes = cap.runs[0]["shapes"]
    stock = _sca(cs, model, conds, latent, euler())  # = pass 0, same seed
    inner = model.model
    x0_in = _streams(cap.runs[0]["out"], shapes)
    carried = inner.process_latent_in(stock["samples"]).unbind()[1]
    assert torch.allclose(x0_in[1], carried, atol=1e-4)               # the sampler space is ComfyUI's
    assert not torch.allclose(carried, stock["samples"].unbind()[1], atol=1e-2)   # the scale matters (4x)
    ms = model.get_model_object("model_sampling")
    sigmas = _sigmas(model, 4)
    settings = fic.Settings(iterations=2, filter_type="butterworth", d_s=0.25, d_t=0.5, order=4, min_signal=0.05)
    n0 = _streams(cap.runs[0]["noise"], shapes)
    fresh = _streams(fic.fresh_noise(cap.runs[0]["noise"].shape, 0, 1), shapes)
    lat = _streams(cap.runs[0]["latent"], shapes)

    def expected(x0_audio):
        u = fic.renoised_unit_noise(ms, sigmas[0], n0[1], x0_audio, lat[1], True, 0.05)
        return fic.mix_along_time(u, fresh[1], -1, settings)
    got = _streams(cap.runs[1]["noise"], shapes)[1]
    assert torch.allclose(got, expected(carried), atol=1e-4)
    assert not torch.allclose(got, expected(stock["samples"].unbind()[1]), atol=1e-3)


def test_freeinit_ksampler_patch_equals_freeinit_sampler_on_ltxav(pack, cs):
    """FreeInit (KSampler) on a nested LTX-2 latent: the stock KSampler with the patched model gives the same
    audio and video as SamplerCustomAdvanced with FreeInit Sampler (same seed, euler, simple, 4 steps,
    CFG 3; NFE 2 x 4 x 2 = 16 each); the input MODEL is not patched."""
    import nodes
    fi = H.pack_module(pack, "nodes.freeinit")
    model, (pos, neg), latent = _model("ltxav")
    patched = fi.FreeInitModelPatch().patch(model, 2, "butterworth", 0.25, 0.25, 4, 0.05, False,
                                            "low-pass along time")[0]
    assert not model.wrappers  # input not mutated
    counts = []
    a = nodes.common_ksampler(count_calls(patched, counts), 0, 4, 3.0, "euler", "simple", pos, neg, latent)[0]
    assert sum(counts) == 16
    b = _sca(cs, model, (pos, neg), latent, _freeinit_sampler(pack, euler(),
                                                              audio="low-pass along time"))
    for x, y in zip(a["samples"].unbind(), b["samples"].unbind()):
        assert torch.allclose(x, y, atol=1e-5)


# =========================================================================== SmoothInit family


def _si(pack):
    return H.pack_module(pack, "nodes.smoothinit")


def _si_patch(pack, model, method="SmoothInit (custom)", K=3):
    # custom SmoothInit K=3 (sigma_sm 0.025, uniform) or Forward-Inversion; cfg 3, inversion_cfg 1: NFE K x 3
    return _si(pack).SmoothInitModelPatch().patch(model, method, 3.0, 1.0, 50, K, 0.025, "uniform", 0.05, 0.05, 0)[0]


class StartNoise:
    """A SAMPLER_SAMPLE-level capture: the unit noise the sampler starts from (after every noise patch)."""

    def __new__(cls):
        import comfy.samplers

        class _S(comfy.samplers.Sampler):
            def __init__(self):
                self.inner, self.noise = euler(), None

            def max_denoise(self, model_wrap, sigmas):
                return self.inner.max_denoise(model_wrap, sigmas)

            def sample(self, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
                self.noise = noise.clone()
                self.shapes = getattr(model_wrap.inner_model, "latent_shapes", None)
                return self.inner.sample(model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs)
        return _S()


@pytest.mark.parametrize("family", ["minimax_h3", "ltxav"])
def test_smoothinit_patch_and_noise_node_on_audio_video(pack, cs, family):
    """SmoothInit (KSampler) and SmoothInit Noise (custom, K 3, cfg 3 / inversion_cfg 1: NFE 3 x 3 = 9, then 4
    steps x 2 = 8 of sampling) optimise both streams' noise through the joint model call: the sampler starts
    from the same optimised noise with both (same seed), each stream keeps its shape, both streams move away
    from the initial noise, and each stream's std stays near 1 (printed)."""
    model, conds, latent = _model(family)
    counts, cap = [], StartNoise()
    _sca(cs, count_calls(_si_patch(pack, model), counts), conds, latent, cap, seed=7)
    assert sum(counts) == 9 + 8
    shapes = cap.shapes
    opt = _streams(cap.noise, shapes)
    ref = cs.Noise_RandomNoise(7).generate_noise(latent).unbind()
    assert [tuple(t.shape) for t in opt] == [tuple(t.shape) for t in ref]
    stds = [float(t.std()) for t in opt]
    print(f"{family}: SmoothInit K=3 noise std per stream (video, audio): {stds}; initial "
          f"{[float(t.std()) for t in ref]}")
    for o, r in zip(opt, ref):
        assert not torch.allclose(o.cpu(), r, atol=1e-3)
        assert 0.5 < float(o.std()) < 1.5
    pos, neg = conds
    node_noise = _si(pack).SmoothInitNoise().build(cs.Noise_RandomNoise(7), model, pos, neg, 3.0, 1.0, 50, "custom", 3,
                                                   0.025, "uniform", 0)[0]
    got = node_noise.generate_noise(latent)
    assert got.is_nested
    for a, b in zip(got.unbind(), opt):
        assert torch.allclose(a, b.cpu(), atol=1e-5)
    out = _sca(cs, model, conds, latent, euler(), noise=node_noise)
    assert [t.shape for t in out["samples"].unbind()] == [t.shape for t in latent["samples"].unbind()]


def test_forward_inversion_audio_follows_comfyuis_audio_shift(pack, cs):
    """MiniMax H3's audio stream has its own flow shift (ModelSamplingAV: audio_scale = 12 / 3 on the video
    schedule). Forward-Inversion (cfg 1 both ways: 2 NFE) of the packed noise equals the core DDIM step and
    inversion run on ComfyUI's stock denoiser of the packed latent (CFGGuider inside sampling), i.e. the audio
    is moved in the sampler's carried variable with the model's own audio-shift conversion."""
    si_core = H.pack_module(pack, "samplers.smoothinit")
    bridge = H.pack_module(pack, "nodes.comfy_bridge")
    model, (pos, neg), latent = _model("minimax_h3")
    noise = cs.Noise_RandomNoise(3).generate_noise(latent)
    fwd = _si(pack).ForwardInversionNoise().build(cs.Noise_RandomNoise(3), model, pos, neg, 1.0, 1.0, 50)[0]
    got = fwd.generate_noise(latent)

    def fn(ctx):
        ms = ctx.model_sampling
        a, b = si_core.inversion_sigmas(bridge.sigma_table(ms), float(ctx.sigmas[0]), 50)
        return si_core.forward_inversion(ctx.denoiser(), ms, ctx.noise, a, b, 1.0, 1.0, None, ctx.max_denoise)
    sigmas = torch.tensor([float(model.get_model_object("model_sampling").sigma_max), 0.0])
    expect = bridge.run_in_sampling(model, pos, neg, 1.0, latent["samples"], noise, sigmas, fn, seed=3,
                                    allow_nested=True)
    for a, b in zip(got.unbind(), bridge.unpack_streams(expect, [tuple(t.shape) for t in noise.unbind()])):
        assert torch.allclose(a, b.cpu(), atol=1e-5)
    assert model.get_model_object("model_sampling").audio_scale == pytest.approx(4.0)


# =========================================================================== image-model methods: clear errors


def test_image_model_methods_refuse_minimax_h3_naming_node_input_and_support(pack, cs):
    """Dependency Noise (KSampler / NOISE), Temporal Momentum Attention and ZS^2 Long Video are image-model
    methods: on MiniMax H3's audio+video latent / model each stops with an error naming the node, the input
    and what it supports."""
    zs2, long = H.pack_module(pack, "nodes.zs2"), H.pack_module(pack, "nodes.zs2_long")
    model, conds, latent = _model("minimax_h3")
    dep = zs2.DependencyNoiseModelPatch().patch(model, 0.05, 4, 4, "dependency", 0.9)[0]
    with pytest.raises(ValueError) as e:
        _sca(cs, dep, conds, latent, euler())
    msg = str(e.value)
    assert msg.startswith("Dependency Noise (KSampler): the sampler's latent is a nested latent of 2 streams")
    assert "[1, 24, 2, 4, 4] + [1, 32, 2, 8]" in msg and "MiniMax H3" in msg and "Dependency Noise supports" in msg
    noise = zs2.DependencyNoise().get_noise(3, 0.05, 4, 4, "dependency", 0.9)[0]
    with pytest.raises(ValueError, match=r"^Dependency Noise: the sampler's latent is a nested latent"):
        _sca(cs, model, conds, latent, euler(), noise=noise)
    with pytest.raises(ValueError, match=r"^ZS\^2 Long Video \(chunks\): model:") as e:
        long.ZS2LongVideo().patch(model, 4)
    print(e.value)
    with pytest.raises(ValueError, match=r"^Temporal Momentum Attention:") as e:
        zs2.TemporalMomentumAttention().patch(model, 0.98)
    print(e.value)


def test_save_and_load_noise_round_trip_audio_video(pack, cs, tmp_path):
    """Save Noise / Load Noise keep an audio+video noise (Forward-Inversion on LTXAV, cfg 3: 3 NFE): one tensor
    per stream in the file, the loaded NOISE gives the same nested noise, and a latent with another audio
    length is refused naming the node and both shapes."""
    si = _si(pack)
    model, (pos, neg), latent = _model("ltxav")
    out_dir, in_dir = tmp_path / "output", tmp_path / "input"
    with H.io_folders(in_dir, out_dir):
        noise = si.ForwardInversionNoise().build(cs.Noise_RandomNoise(4), model, pos, neg, 3.0, 1.0, 50)[0]
        expect = noise.generate_noise(latent)
        rel = si.SaveNoise().save(noise, latent, "noise/av")["ui"]["text"][0]
        (in_dir / "n.safetensors").write_bytes((out_dir / rel).read_bytes())
        from safetensors import safe_open
        with safe_open(str(in_dir / "n.safetensors"), framework="pt") as f:
            assert sorted(f.keys()) == ["noise.0", "noise.1"]
        loaded = si.LoadNoise().load("n.safetensors")[0]
        got = loaded.generate_noise(latent)
        assert got.is_nested and loaded.seed == 4
        for a, b in zip(got.unbind(), expect.unbind()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        other = tiny_av.ltxav_latent(length=17)
        with pytest.raises(ValueError, match=r"^Load Noise: the noise 'n.safetensors' has stream shapes"):
            loaded.generate_noise(other)
        out = _sca(cs, model, (pos, neg), latent, euler(), noise=loaded)
        assert [t.shape for t in out["samples"].unbind()] == [t.shape for t in latent["samples"].unbind()]

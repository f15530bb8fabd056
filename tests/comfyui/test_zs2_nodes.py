"""ZS^2 nodes in the real ComfyUI: Dependency Noise (NOISE and KSampler patch) and Temporal Momentum
Attention on a tiny random-weight SD1.5-architecture UNet (and the tiny Wan for the error path)."""
import re

import pytest
import torch

from comfy_harness import pack_module, sd15_conds, tiny_sd15, tiny_wan

FRAMES, H, W = 8, 16, 16
SEED = 1234


@pytest.fixture(scope="module")
def zs2(pack):
    return pack_module(pack, "nodes.zs2")


@pytest.fixture(scope="module")
def bridge(pack):
    return pack_module(pack, "nodes.comfy_bridge")


@pytest.fixture(scope="module")
def model(pack):
    return tiny_sd15("EPS", seed=0)


@pytest.fixture(scope="module")
def conds(pack):
    return sd15_conds(seed=0)


def _x(frames=FRAMES, seed=0):
    return torch.randn(frames, 4, H, W, generator=torch.Generator().manual_seed(seed)) * 3.0


def denoise(bridge, model, conds, x, sigma=3.0, cfg=4.0):
    """ComfyUI's CFG denoised x0 for ``x`` at ``sigma`` (through CFGGuider: real cond/uncond batching)."""
    pos, neg = conds
    sig = torch.tensor([sigma, 0.0])
    with torch.inference_mode():
        return bridge.run_in_sampling(model, pos, neg, cfg, torch.zeros_like(x), torch.zeros_like(x), sig,
                                      lambda ctx: ctx.denoiser()(x.to(ctx.noise.device), sigma, cfg).cpu())


def tma(zs2, model, mu):
    with torch.inference_mode():
        return zs2.TemporalMomentumAttention().patch(model, mu)[0]


def attn1_keys(bridge, model):
    """``(block_name, number, transformer_index)`` of every UNet self-attention, from module names."""
    keys = []
    for name in bridge.unet_self_attention_keys(model):
        m = re.match(r"(input|output)_blocks\.(\d+)\..*transformer_blocks\.(\d+)$", name)
        if m:
            keys.append((m.group(1), int(m.group(2)), int(m.group(3))))
        else:
            m = re.match(r"middle_block\..*transformer_blocks\.(\d+)$", name)
            keys.append(("middle", 0, int(m.group(1))))
    return keys


def reference_model(bridge, model, mu, calls):
    """TMA computed independently *after* the K/V projections: an attn1_replace on every block that
    rebuilds K', V' with the explicit recursion of Eq. 2 per cond/uncond chunk (mu_i = 1: frame i - 1's
    K'/V' exactly, so mu = 1 copies frame 1's K/V to every frame) and runs ComfyUI's attention kernel.
    ``mu``: a number or per-frame ``[mu_1, ..., mu_F]`` (frame i uses mu_i)."""
    from comfy.ldm.modules.attention import optimized_attention

    def momentum(t, chunks):
        f = t.shape[0] // chunks
        mus = list(mu) if isinstance(mu, (list, tuple)) else [mu] * f
        out = []
        for c in range(chunks):
            prev = t[c * f]
            rows = [prev]
            for i in range(1, f):
                prev = prev if mus[i] == 1.0 else mus[i] * prev + (1 - mus[i]) * t[c * f + i]
                rows.append(prev)
            out.extend(rows)
        return torch.stack(out)

    def replace(q, k, v, extra_options):
        calls.append(1)
        chunks = len(extra_options["cond_or_uncond"])
        return optimized_attention(q, momentum(k, chunks), momentum(v, chunks), extra_options["n_heads"])

    m = model.clone()
    for key in attn1_keys(bridge, model):
        m.set_model_attn1_replace(replace, *key)
    return m


# --------------------------------------------------------------------------- TMA equalities

def test_mu0_equals_unpatched_and_patch_is_active(zs2, bridge, model, conds):
    x = _x()
    plain = denoise(bridge, model, conds, x)
    assert torch.allclose(denoise(bridge, tma(zs2, model, 0.0), conds, x), plain, atol=1e-5, rtol=1e-5)
    active = denoise(bridge, tma(zs2, model, 0.98), conds, x)
    assert (active - plain).abs().max() > 1e-2      # the same patch with mu > 0 does change the outputs


def test_one_frame_identical_to_unpatched(zs2, bridge, model, conds):
    x = _x(frames=1)
    assert torch.allclose(denoise(bridge, tma(zs2, model, 0.98), conds, x), denoise(bridge, model, conds, x),
                          atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mu", [1.0, 0.98, 0.5])
def test_equals_post_projection_reference(zs2, bridge, model, conds, mu):
    """Averaging the normed hidden states before the K/V projections (our attn1_patch) equals Eq. 2 on
    the projected K/V per CFG chunk; mu = 1 is cross-frame attention to frame 1."""
    x = _x(seed=1)
    calls = []
    ref = denoise(bridge, reference_model(bridge, model, mu, calls), conds, x)
    assert len(calls) == len(attn1_keys(bridge, model)) == 7       # one batched CFG call, every block
    ours = denoise(bridge, tma(zs2, model, mu), conds, x)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4), (ours - ref).abs().max()
    assert (ours - denoise(bridge, model, conds, x)).abs().max() > 1e-2


def test_cond_and_uncond_chunks_never_mix(zs2, model, conds):
    """One batched model call with cond_or_uncond = [1, 0]: perturbing the uncond chunk's frames leaves
    the cond chunk's outputs unchanged (and the same perturbation leaks when grouped as one chunk)."""
    patched = tma(zs2, model, 0.9)
    pos, neg = conds
    ctx = torch.cat([neg[0][0].expand(FRAMES, -1, -1), pos[0][0].expand(FRAMES, -1, -1)])
    x = torch.cat([_x(seed=2), _x(seed=3)])
    y = x.clone()
    y[:FRAMES] += torch.randn(FRAMES, 4, H, W, generator=torch.Generator().manual_seed(4))
    sigma = torch.full((2 * FRAMES,), 3.0)

    def run(inp, cou):
        to = dict(patched.model_options["transformer_options"])
        to["cond_or_uncond"] = cou
        with torch.inference_mode():
            return patched.model.apply_model(inp, sigma, c_crossattn=ctx, transformer_options=to)

    a, b = run(x, [1, 0]), run(y, [1, 0])
    assert torch.equal(a[FRAMES:], b[FRAMES:])
    assert not torch.allclose(a[:FRAMES], b[:FRAMES])
    a1, b1 = run(x, [0]), run(y, [0])                 # control: one chunk of 16 frames does mix
    assert (a1[FRAMES:] - b1[FRAMES:]).abs().max() > 1e-3


# --------------------------------------------------------------------------- sampling runs

def strong_attention_model(seed=1, qk=0.3, vo=3.0):
    """Tiny SD1.5 whose self-attention carries a sizeable share of each block (random weights alone
    make attention a small perturbation): attn1 V/out projections x3, Q/K x0.3 (softer softmax)."""
    m = tiny_sd15("EPS", seed=seed)
    with torch.no_grad():
        for name, p in m.model.diffusion_model.named_parameters():
            if ".attn1.to_v" in name or ".attn1.to_out" in name:
                p.mul_(vo)
            elif ".attn1.to_q" in name or ".attn1.to_k" in name:
                p.mul_(qk)
    return m


def frame_change(x):
    """Mean norm of consecutive-frame differences relative to the mean frame norm."""
    return ((x[1:] - x[:-1]).flatten(1).norm(dim=1).mean() / x.flatten(1).norm(dim=1).mean()).item()


def test_sampling_deterministic_finite_and_smoother_with_momentum(zs2, conds):
    """KSampler on Dependency Noise (KSampler) + TMA: deterministic, finite, and the frame-to-frame
    change of the sampled latents falls as momentum rises (0 > 0.5 > 0.9; 1 below 0.5 and far below 0;
    over 8 frames the change plateaus between 0.9 and 1: measured 0.757, 0.690, 0.679, 0.677)."""
    import nodes
    pos, neg = conds
    base = strong_attention_model(seed=0)
    with torch.inference_mode():
        noisy = zs2.DependencyNoiseModelPatch().patch(base, 0.3, 10, 15, "dependency", 0.9)[0]

        def run(mu):
            m = zs2.TemporalMomentumAttention().patch(noisy, mu)[0]
            lat = {"samples": torch.zeros(FRAMES, 4, H, W)}
            return nodes.KSampler().sample(m, SEED, 3, 5.0, "euler", "normal", pos, neg, lat)[0]["samples"]

        outs = {mu: run(mu) for mu in (0.0, 0.5, 0.9, 1.0)}
        again = run(0.9)
    assert torch.equal(outs[0.9], again)
    assert all(torch.isfinite(o).all() for o in outs.values())
    c = {mu: frame_change(o) for mu, o in outs.items()}
    assert c[0.0] > c[0.5] > c[0.9], c
    assert c[1.0] < c[0.5] and c[1.0] < 0.92 * c[0.0], c


def test_noise_node_equals_ksampler_patch(zs2, model, conds):
    """Same seed and settings: the NOISE node's noise is exactly what the patched KSampler starts from,
    and SamplerCustomAdvanced with it equals KSampler with the patch."""
    import comfy.patcher_extension
    import comfy_extras.nodes_custom_sampler as cs
    import nodes
    pos, neg = conds
    lat = {"samples": torch.zeros(FRAMES, 4, H, W)}
    for noise_model in ("dependency", "mixed", "progressive"):
        args = (0.05, 10, 15, noise_model, 0.8)
        with torch.inference_mode():
            noise = zs2.DependencyNoise().get_noise(SEED, *args)[0]
            patched = zs2.DependencyNoiseModelPatch().patch(model, *args)[0]
            captured = []

            def capture(executor, noise_in, *a, **kw):
                captured.append(noise_in.clone())
                return executor(noise_in, *a, **kw)

            probe = patched.clone()
            probe.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.capture", capture)
            ks = nodes.KSampler().sample(probe, SEED, 2, 4.0, "euler", "normal", pos, neg, lat)[0]["samples"]
            expected = noise.generate_noise(lat)
            assert noise.seed == SEED and expected.dtype == lat["samples"].dtype and expected.device.type == "cpu"
            assert torch.equal(captured[0], expected)
            if noise_model == "dependency":
                guider = cs.CFGGuider().get_guider(model, pos, neg, 4.0)[0]
                sampler = cs.KSamplerSelect().get_sampler("euler")[0]
                sigmas = cs.BasicScheduler().get_sigmas(model, "normal", 2, 1.0)[0]
                sca = cs.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, lat)[0]["samples"]
                assert torch.allclose(sca, ks, atol=1e-6)
                plain = nodes.KSampler().sample(model, SEED, 2, 4.0, "euler", "normal", pos, neg, lat)[0]["samples"]
                assert not torch.allclose(plain, ks)


def test_ksampler_patch_leaves_zero_noise_alone(zs2, model, conds):
    import nodes
    pos, neg = conds
    lat = {"samples": _x(seed=5) * 0.3}
    with torch.inference_mode():
        patched = zs2.DependencyNoiseModelPatch().patch(model, 0.01, 10, 15, "dependency", 0.9)[0]
        adv = nodes.KSamplerAdvanced()
        a = adv.sample(patched, "disable", SEED, 2, 4.0, "euler", "normal", pos, neg, lat, 0, 2, "disable")[0]
        b = adv.sample(model, "disable", SEED, 2, 4.0, "euler", "normal", pos, neg, lat, 0, 2, "disable")[0]
    assert torch.equal(a["samples"], b["samples"])


def _structure(obj):
    """A comparable snapshot of model_options: dict keys, list lengths and element identities."""
    if isinstance(obj, dict):
        return {k: _structure(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, len(obj)] + [_structure(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.data_ptr(), tuple(obj.shape))
    return ("obj", id(obj))


def test_input_model_not_mutated(zs2, bridge, model, conds):
    x = _x(seed=6)
    before_out = denoise(bridge, model, conds, x)
    before = _structure(model.model_options), _structure(model.wrappers), _structure(model.object_patches)
    with torch.inference_mode():
        a = zs2.TemporalMomentumAttention().patch(model, 0.98)[0]
        b = zs2.DependencyNoiseModelPatch().patch(a, 0.01, 10, 15, "dependency", 0.9)[0]
    after = _structure(model.model_options), _structure(model.wrappers), _structure(model.object_patches)
    assert after == before
    assert "patches" not in model.model_options.get("transformer_options", {})
    assert a is not model and b is not a
    assert len(a.model_options["transformer_options"]["patches"]["attn1_patch"]) == 1
    outer = "outer_sample"
    assert len(b.get_all_wrappers(outer)) == 1
    assert len(a.get_all_wrappers(outer)) == 0 and len(model.get_all_wrappers(outer)) == 0
    assert torch.equal(denoise(bridge, model, conds, x), before_out)


# --------------------------------------------------------------------------- other models, metadata

def test_tma_clear_error_on_wan(zs2):
    with pytest.raises(ValueError, match=r"Temporal Momentum Attention: model: .*WanModel.*no UNet self-attention"):
        with torch.inference_mode():
            zs2.TemporalMomentumAttention().patch(tiny_wan(), 0.98)


def test_dependency_noise_on_wan_video_latent(zs2):
    """Video latents [B, C, T, H, W]: the KSampler patch draws frames along axis 2 and sampling runs."""
    import comfy.patcher_extension
    import nodes
    from comfy_harness import wan_conds
    wan = tiny_wan()
    pos, neg = wan_conds()
    lat = {"samples": torch.zeros(1, 16, 4, 8, 8)}
    captured = []

    def capture(executor, noise_in, *a, **kw):
        captured.append(noise_in.clone())
        return executor(noise_in, *a, **kw)

    with torch.inference_mode():
        patched = zs2.DependencyNoiseModelPatch().patch(wan, 0.01, 10, 15, "dependency", 0.9)[0]
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.capture", capture)
        out = nodes.KSampler().sample(patched, SEED, 1, 3.0, "euler", "simple", pos, neg, lat)[0]["samples"]
    n = captured[0]
    assert n.shape == (1, 16, 4, 8, 8) and torch.isfinite(out).all()
    cos = torch.nn.functional.cosine_similarity
    assert cos(n[0, :, 0].flatten(), n[0, :, 1].flatten(), dim=0) > 0.95      # frames correlated along T
    assert cos(n[0, 0].flatten(), n[0, 1].flatten(), dim=0).abs() < 0.3       # channels are not


def test_node_metadata(zs2):
    import nodes
    for key, display in zs2.NODE_DISPLAY_NAME_MAPPINGS.items():
        cls = nodes.NODE_CLASS_MAPPINGS[key]
        assert nodes.NODE_DISPLAY_NAME_MAPPINGS[key] == display
        for name, spec in cls.INPUT_TYPES()["required"].items():
            assert spec[1].get("tooltip"), (key, name)
        assert cls.CATEGORY and cls.DESCRIPTION and len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert set(zs2.NODE_DISPLAY_NAME_MAPPINGS.values()) == {
        "Dependency Noise", "Dependency Noise (KSampler)", "Temporal Momentum Attention"}
    spec = zs2.DependencyNoise.INPUT_TYPES()["required"]["noise_seed"][1]
    assert spec["control_after_generate"] is True
    assert zs2.TemporalMomentumAttention.INPUT_TYPES()["required"]["momentum"][1]["default"] == 0.98
    with pytest.raises(ValueError, match="Dependency Noise: kl_lambda"):
        zs2.DependencyNoise().get_noise(0, -1.0, 10, 15, "dependency", 0.9)
    with pytest.raises(ValueError, match="Temporal Momentum Attention: momentum"):
        zs2.TemporalMomentumAttention().patch(None, 1.5)


# --------------------------------------------------------------------------- per-frame lambda_i / mu_i

def test_schedule_inputs_are_optional_strings(zs2):
    for cls, name in ((zs2.DependencyNoise, "kl_lambda_schedule"), (zs2.DependencyNoiseModelPatch, "kl_lambda_schedule"),
                      (zs2.TemporalMomentumAttention, "momentum_schedule")):
        types = cls.INPUT_TYPES()
        assert name not in types["required"]
        kind, opts = types["optional"][name]
        assert kind == "STRING" and opts["default"] == "" and "start:end" in opts["tooltip"]


@pytest.mark.parametrize("text,match", [
    ("0.01, abc", r"'abc' is not a number"),
    ("0.01, -0.02", r"lambda_i = -0.02 is out of range: each lambda_i must be a number >= 0"),
    ("0.1:0.2:0.3", r"'0.1:0.2:0.3' is not a ramp 'start:end'"),
])
def test_lambda_schedule_errors_name_node_and_input(zs2, model, text, match):
    with pytest.raises(ValueError, match=r"^Dependency Noise: kl_lambda_schedule: " + match):
        zs2.DependencyNoise().get_noise(0, 0.01, 10, 15, "dependency", 0.9, text)
    with pytest.raises(ValueError, match=r"^Dependency Noise \(KSampler\): kl_lambda_schedule: " + match):
        zs2.DependencyNoiseModelPatch().patch(model, 0.01, 10, 15, "dependency", 0.9, text)


@pytest.mark.parametrize("text,match", [
    ("0, 0.9, x", r"'x' is not a number"),
    ("0.5, 1.5", r"mu_i = 1.5 is out of range: each mu_i must be a number >= 0 and <= 1"),
    ("-0.1:0.9", r"mu_i = -0.1 is out of range"),
])
def test_momentum_schedule_errors_name_node_and_input(zs2, model, text, match):
    with pytest.raises(ValueError, match=r"^Temporal Momentum Attention: momentum_schedule: " + match):
        zs2.TemporalMomentumAttention().patch(model, 0.98, text)


def test_lambda_schedule_noise_per_frame_and_same_in_both_nodes(zs2, model, conds):
    """kl_lambda_schedule reaches the noise (frame i searched against lambda_i, the last value
    repeating), identically in the NOISE node and the KSampler patch; empty = the scalar exactly."""
    import comfy.patcher_extension
    import nodes
    from training_free_video.samplers.dependency_noise import dependency_noise
    pos, neg = conds
    lat = {"samples": torch.zeros(FRAMES, 4, H, W)}
    lambdas = [0.01, 2.0, 0.01, 0.01, 0.01, 0.01, 0.01]               # '0.01, 2, 0.01': a cut at frame 3
    with torch.inference_mode():
        noise = zs2.DependencyNoise().get_noise(SEED, 0.05, 10, 15, "dependency", 0.9, "0.01, 2, 0.01")[0]
        n = noise.generate_noise(lat)
        ref = dependency_noise((1, FRAMES, 4, H, W), lambdas, generator=torch.Generator().manual_seed(SEED))[0]
        assert torch.equal(n, ref)
        cos = torch.nn.functional.cosine_similarity
        c = [cos(n[i].flatten(), n[i + 1].flatten(), dim=0).item() for i in range(FRAMES - 1)]
        assert c[1] < 0.3 and min(c[:1] + c[2:]) > 0.9, c              # only frames 2 -> 3 decorrelate
        scalar = zs2.DependencyNoise().get_noise(SEED, 0.05, 10, 15, "dependency", 0.9)[0].generate_noise(lat)
        assert torch.equal(zs2.DependencyNoise().get_noise(SEED, 0.05, 10, 15, "dependency", 0.9, " ")[0]
                           .generate_noise(lat), scalar)
        assert not torch.equal(n, scalar)
        patched = zs2.DependencyNoiseModelPatch().patch(model, 0.05, 10, 15, "dependency", 0.9, "0.01, 2, 0.01")[0]
        captured = []

        def capture(executor, noise_in, *a, **kw):
            captured.append(noise_in.clone())
            return executor(noise_in, *a, **kw)

        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.capture", capture)
        nodes.KSampler().sample(patched, SEED, 1, 4.0, "euler", "normal", pos, neg, lat)
    assert torch.equal(captured[0], n)


def test_momentum_schedule_equals_per_frame_reference(zs2, bridge, model, conds):
    """TMA with momentum_schedule in the real UNet equals Eq. 2 with mu_i per frame applied to the
    projected K/V per CFG chunk (mu_1 unused; '0.3, 0.9, 0.5, 1' -> mu_4..mu_8 = 1); a constant
    schedule equals the scalar exactly, and the empty schedule is the scalar."""
    x = _x(seed=7)
    with torch.inference_mode():
        ours = denoise(bridge, zs2.TemporalMomentumAttention().patch(model, 0.98, "0.3, 0.9, 0.5, 1")[0], conds, x)
    calls = []
    ref = denoise(bridge, reference_model(bridge, model, [0.3, 0.9, 0.5, 1, 1, 1, 1, 1], calls), conds, x)
    assert calls and torch.allclose(ours, ref, atol=1e-4, rtol=1e-4), (ours - ref).abs().max()
    scalar = denoise(bridge, tma(zs2, model, 0.9), conds, x)
    assert (ours - scalar).abs().max() > 1e-2
    with torch.inference_mode():
        const = zs2.TemporalMomentumAttention().patch(model, 0.5, "0.2, 0.9")[0]          # mu_2.. = 0.9
        empty = zs2.TemporalMomentumAttention().patch(model, 0.9, "")[0]
    assert torch.equal(denoise(bridge, const, conds, x), scalar)
    assert torch.equal(denoise(bridge, empty, conds, x), scalar)

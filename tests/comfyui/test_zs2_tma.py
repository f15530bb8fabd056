"""ZS^2 Temporal Momentum Attention in the real ComfyUI on a tiny random-weight SD1.5-architecture UNet (and
the tiny Wan for the error path) and on DiT image models (tiny Flux, SD3): Eq. 2 references, cond/uncond
chunks, sampling with Dependency Noise, the input MODEL not mutated, the ZS^2 node metadata, per-frame
momentum_schedule. Dependency Noise alone: test_zs2_dependency_noise.py; TMA on Flux / SD3 / Qwen-Image joint
attention: test_zs2_tma_dit.py; on the newer image DiT families: test_zs2_tma_image_families.py.
The Eq. 2 references and DiT helpers here (``ReferenceTMA``, ``dit_denoise``, ...) are imported by those files."""
import re

import pytest
import torch

from comfy_harness import pack_module, structure, tiny_sd15, tiny_wan

FRAMES, H, W = 8, 16, 16
SEED = 1234


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

def test_mu0_equals_unpatched_and_patch_is_active(zs2, bridge, sd15, conds):
    x = _x()
    plain = denoise(bridge, sd15, conds, x)
    assert torch.allclose(denoise(bridge, tma(zs2, sd15, 0.0), conds, x), plain, atol=1e-5, rtol=1e-5)
    active = denoise(bridge, tma(zs2, sd15, 0.98), conds, x)
    assert (active - plain).abs().max() > 1e-2      # the same patch with mu > 0 does change the outputs


def test_one_frame_identical_to_unpatched(zs2, bridge, sd15, conds):
    x = _x(frames=1)
    assert torch.allclose(denoise(bridge, tma(zs2, sd15, 0.98), conds, x), denoise(bridge, sd15, conds, x),
                          atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mu", [1.0, 0.98, 0.5])
def test_equals_post_projection_reference(zs2, bridge, sd15, conds, mu):
    """Averaging the normed hidden states before the K/V projections (our attn1_patch) equals Eq. 2 on
    the projected K/V per CFG chunk; mu = 1 is cross-frame attention to frame 1."""
    x = _x(seed=1)
    calls = []
    ref = denoise(bridge, reference_model(bridge, sd15, mu, calls), conds, x)
    assert len(calls) == len(attn1_keys(bridge, sd15)) == 7       # one batched CFG call, every block
    ours = denoise(bridge, tma(zs2, sd15, mu), conds, x)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4), (ours - ref).abs().max()
    assert (ours - denoise(bridge, sd15, conds, x)).abs().max() > 1e-2


def test_cond_and_uncond_chunks_never_mix(zs2, sd15, conds):
    """One batched model call with cond_or_uncond = [1, 0]: perturbing the uncond chunk's frames leaves
    the cond chunk's outputs unchanged (and the same perturbation leaks when grouped as one chunk)."""
    patched = tma(zs2, sd15, 0.9)
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


def test_input_model_not_mutated(zs2, bridge, sd15, conds):
    x = _x(seed=6)
    before_out = denoise(bridge, sd15, conds, x)
    before = structure(sd15.model_options), structure(sd15.wrappers), structure(sd15.object_patches)
    with torch.inference_mode():
        a = zs2.TemporalMomentumAttention().patch(sd15, 0.98)[0]
        b = zs2.DependencyNoiseModelPatch().patch(a, 0.01, 10, 15, "dependency", 0.9)[0]
    after = structure(sd15.model_options), structure(sd15.wrappers), structure(sd15.object_patches)
    assert after == before
    assert "patches" not in sd15.model_options.get("transformer_options", {})
    assert a is not sd15 and b is not a
    assert len(a.model_options["transformer_options"]["patches"]["attn1_patch"]) == 1
    outer = "outer_sample"
    assert len(b.get_all_wrappers(outer)) == 1
    assert len(a.get_all_wrappers(outer)) == 0 and len(sd15.get_all_wrappers(outer)) == 0
    assert torch.equal(denoise(bridge, sd15, conds, x), before_out)


# --------------------------------------------------------------------------- other models, metadata

def test_tma_clear_error_on_wan(zs2):
    with pytest.raises(ValueError, match=r"Temporal Momentum Attention: model: .*WanModel.*no UNet self-attention"):
        with torch.inference_mode():
            zs2.TemporalMomentumAttention().patch(tiny_wan(), 0.98)


def test_node_metadata(zs2):
    import nodes
    _, names = pack_of(zs2).nodes.registry.mappings(zs2.__name__)
    for key, display in names.items():
        cls = nodes.NODE_CLASS_MAPPINGS[key]
        assert nodes.NODE_DISPLAY_NAME_MAPPINGS[key] == display
        for name, spec in cls.INPUT_TYPES()["required"].items():
            assert spec[1].get("tooltip"), (key, name)
        assert cls.CATEGORY and cls.DESCRIPTION and len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES)
    assert set(names.values()) == {
        "Dependency Noise", "Dependency Noise (KSampler)", "Temporal Momentum Attention"}
    spec = zs2.DependencyNoise.INPUT_TYPES()["required"]["noise_seed"][1]
    assert spec["control_after_generate"] is True
    assert zs2.TemporalMomentumAttention.INPUT_TYPES()["required"]["momentum"][1]["default"] == 0.98
    with pytest.raises(ValueError, match="Dependency Noise: kl_lambda"):
        zs2.DependencyNoise().get_noise(0, -1.0, 10, 15, "dependency", 0.9)
    with pytest.raises(ValueError, match="Temporal Momentum Attention: momentum"):
        zs2.TemporalMomentumAttention().patch(None, 1.5)


# --------------------------------------------------------------------------- TMA on DiT image models (Flux, SD3)

DIT_FRAMES, DIT_HW = 6, 8


@pytest.fixture(scope="module", params=["flux", "sd3"])
def dit(request, pack):
    """(name, tiny random-weight model, (positive, negative)) built with ComfyUI's own classes."""
    from comfy_harness import flux_conds, sd3_conds, tiny_flux, tiny_sd3
    if request.param == "flux":
        return "flux", tiny_flux(seed=0), flux_conds(seed=0)
    return "sd3", tiny_sd3(seed=0), sd3_conds(seed=0)


def _dit_x(frames=DIT_FRAMES, seed=0):
    return torch.randn(frames, 16, DIT_HW, DIT_HW, generator=torch.Generator().manual_seed(seed)) * 1.5


def dit_denoise(bridge, model, conds, x, sigma=0.7, cfg=3.0):
    return denoise(bridge, model, conds, x, sigma=sigma, cfg=cfg)


def capture_attention(calls: list):
    """``make_override(previous)`` for :func:`bridge.add_attention_override`: a test override (a plain
    closure, so ModelPatcher.clone shares rather than deep-copies it) that records every call's
    function, args, kwargs and result into ``calls``, around the previous override."""
    def make(previous):
        def capture(func, *args, **kwargs):
            out = previous(func, *args, **kwargs) if previous is not None else func(*args, **kwargs)
            calls.append({"func": func, "args": args, "kwargs": dict(kwargs), "out": out})
            return out
        return capture
    return make


# The frame's own image tokens in a self/joint attention call of n tokens of the tiny DiTs on an 8x8
# latent (patch 2: 16 image tokens) with the harness's 6 text tokens: Flux/Chroma concatenate
# (txt, img) in double and single blocks; SD3's MMDiT (context, x), and its x-only self-attention.
DIT_IMAGE_TOKENS, DIT_TEXT_TOKENS = (DIT_HW // 2) ** 2, 6


def reference_image_span(name, n):
    if n == DIT_IMAGE_TOKENS:
        return 0, n
    return (DIT_TEXT_TOKENS, DIT_TEXT_TOKENS + DIT_IMAGE_TOKENS) if name == "flux" else (n - DIT_IMAGE_TOKENS, n)


class ReferenceTMA:
    """Independent reference: Eq. 2 by its explicit recursion on the projected K, V of every call whose
    q and k have the same token count, per cond/uncond chunk (mu = 1: frame 1's K, V copied), on the
    frame's image tokens only (``image``: the model name of :func:`reference_image_span`) or, with
    ``image=None``, on every token. ``mu``: a number or per-frame ``[mu_1, ..., mu_F]`` (frame i uses
    mu_i; mu_i = 1: frame i - 1's)."""

    def __init__(self, mu, image=None):
        self.mu, self.calls, self.image = mu, 0, image

    def __deepcopy__(self, memo):
        # ModelPatcher.clone (ComfyUI 0.3.64) deep-copies callable objects in model_options, and the
        # pack's own loops clone the MODEL: the copy must count into this object's ``calls``.
        return self

    def momentum(self, t, chunks):
        f = t.shape[0] // chunks
        mus = list(self.mu) if isinstance(self.mu, (list, tuple)) else None
        out = []
        for c in range(chunks):
            prev = t[c * f]
            out.append(prev)
            for i in range(1, f):
                if mus is not None:
                    prev = prev if mus[i] == 1.0 else mus[i] * prev + (1 - mus[i]) * t[c * f + i]
                else:
                    prev = t[c * f] if self.mu == 1.0 else self.mu * prev + (1 - self.mu) * t[c * f + i]
                out.append(prev)
        return torch.stack(out)

    def average(self, t, chunks, ax):
        if self.image is None:
            return self.momentum(t, chunks)
        a, b = reference_image_span(self.image, t.shape[ax])
        img = self.momentum(t.narrow(ax, a, b - a), chunks)
        return torch.cat([t.narrow(ax, 0, a), img, t.narrow(ax, b, t.shape[ax] - b)], dim=ax)

    def __call__(self, func, q, k, v, *args, **kwargs):
        ax = 2 if kwargs.get("skip_reshape") else 1
        if q.shape[ax] == k.shape[ax]:
            self.calls += 1
            chunks = len(kwargs["transformer_options"]["cond_or_uncond"])
            k, v = self.average(k, chunks, ax), self.average(v, chunks, ax)
        return func(q, k, v, *args, **kwargs)


def test_dit_model_is_recognised_and_patched_by_override(zs2, bridge, dit):
    name, model, _ = dit
    assert bridge.dit_image_model_family(model) == {"flux": "Flux", "sd3": "MMDiT"}[name]
    assert zs2.check_tma_model(model) == "dit"
    patched = tma(zs2, model, 0.9)
    ov = bridge.attention_override(patched)
    assert type(ov).__name__ == "TemporalMomentumAttentionOverride" and ov.momentum == 0.9
    assert bridge.attention_override(model) is None                      # input MODEL untouched
    assert "patches" not in patched.model_options["transformer_options"]   # no attn1 patch on a DiT


def test_dit_mu0_equals_unpatched_exactly_and_patch_is_active(zs2, bridge, dit):
    name, model, conds = dit
    x = _dit_x()
    plain = dit_denoise(bridge, model, conds, x)
    assert torch.equal(dit_denoise(bridge, tma(zs2, model, 0.0), conds, x), plain)
    assert (dit_denoise(bridge, tma(zs2, model, 0.98), conds, x) - plain).abs().max() > 1e-2


def test_dit_one_frame_equals_plain_exactly(zs2, bridge, dit):
    name, model, conds = dit
    x = _dit_x(frames=1, seed=3)
    assert torch.equal(dit_denoise(bridge, tma(zs2, model, 0.98), conds, x), dit_denoise(bridge, model, conds, x))


@pytest.mark.parametrize("text_tokens", ["keep", "average"])
@pytest.mark.parametrize("mu", [0.3, 0.98, 1.0])
def test_dit_equals_reference_eq2_on_projected_kv(zs2, bridge, dit, mu, text_tokens):
    """The patched model equals an independent Eq. 2 (explicit recursion per CFG chunk) applied to the
    K, V of every self/joint attention call (the frame's image tokens only with text_tokens 'keep',
    every token with 'average'), through ComfyUI's own CFG batching."""
    name, model, conds = dit
    x = _dit_x(seed=1)
    ref = ReferenceTMA(mu, image=name if text_tokens == "keep" else None)
    ref_model = bridge.add_attention_override(model, lambda prev: ref)
    expected = dit_denoise(bridge, ref_model, conds, x)
    # Flux: 1 double + 1 single block; SD3.5-style tiny MMDiT: 2 joint + 1 extra image self-attention.
    assert ref.calls == {"flux": 2, "sd3": 3}[name]
    with torch.inference_mode():
        ours = dit_denoise(bridge, zs2.TemporalMomentumAttention().patch(model, mu, "", text_tokens)[0], conds, x)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5), (ours - expected).abs().max()
    assert (ours - dit_denoise(bridge, model, conds, x)).abs().max() > 1e-2


def test_dit_mu1_every_frame_attends_to_frame_1(zs2, bridge, dit):
    """mu = 1: every captured self/joint attention output of frame i equals attention of frame i's
    queries to frame 1's K, V of its chunk (computed per frame with the model's own kernel)."""
    name, model, conds = dit
    calls = []
    patched = bridge.add_attention_override(tma(zs2, model, 1.0), capture_attention(calls))
    dit_denoise(bridge, patched, conds, _dit_x(seed=2))
    checked = 0
    for call in calls:
        q, k, v = call["args"][:3]
        kw = call["kwargs"]
        ax = 2 if kw.get("skip_reshape") else 1
        assert q.shape[ax] == k.shape[ax]                         # tiny DiTs have self/joint attention only
        chunks = len(kw["transformer_options"]["cond_or_uncond"])
        assert chunks == 2
        f = q.shape[0] // chunks
        for i in range(q.shape[0]):
            first = (i // f) * f
            one = call["func"](q[i:i + 1], k[first:first + 1], v[first:first + 1], *call["args"][3:], **kw)
            assert torch.allclose(call["out"][i:i + 1], one, atol=1e-5, rtol=1e-5)
        checked += 1
    assert checked == {"flux": 2, "sd3": 3}[name]


def test_flux_text_tokens_unchanged_at_first_joint_attention(zs2, bridge):
    """Flux's first double block attends over cat(txt, img): the prompt's text K, V are identical
    over the frames of a chunk, so the momentum average returns them unchanged bit for bit while the
    image K, V change."""
    from comfy_harness import flux_conds, tiny_flux
    tm = pack_module(pack_of(zs2), "nodes.comfy_bridge")
    model, conds = tiny_flux(seed=0), flux_conds(seed=0)
    calls = []
    probe = bridge.add_attention_override(model, capture_attention(calls))
    dit_denoise(bridge, probe, conds, _dit_x(seed=4))
    first = calls[0]
    q, k, v = first["args"][:3]
    assert first["kwargs"]["skip_reshape"] is True and q.ndim == 4     # [B, heads, tokens, dim_head]
    txt = conds[0][0][0].shape[1]
    ov = tm.TemporalMomentumAttentionOverride(0.98)
    k2, v2 = ov.average(q, k, v, first["kwargs"]["transformer_options"], True)
    assert torch.equal(k[:DIT_FRAMES, :, :txt], k[:1, :, :txt].expand(DIT_FRAMES, -1, -1, -1))   # identical text
    assert torch.equal(k2[:, :, :txt], k[:, :, :txt]) and torch.equal(v2[:, :, :txt], v[:, :, :txt])
    assert (k2[:, :, txt:] - k[:, :, txt:]).abs().max() > 1e-2


def pack_of(module):
    import sys
    return sys.modules[module.__name__.rsplit(".nodes.", 1)[0]]


def test_dit_cond_and_uncond_chunks_never_mix(zs2, bridge, dit):
    """One batched model call with cond_or_uncond = [1, 0]: changing the uncond chunk's latent frames
    and text changes none of the cond chunk's outputs (and does leak when grouped as one chunk)."""
    name, model, conds = dit
    patched = tma(zs2, model, 0.9)
    pos, neg = conds
    f = DIT_FRAMES

    def ctx(c):
        return c[0][0].expand(f, -1, -1)

    def pooled(c):
        return c[0][1]["pooled_output"].expand(f, -1)

    x = torch.cat([_dit_x(seed=5), _dit_x(seed=6)])
    y = x.clone()
    y[:f] += torch.randn(f, 16, DIT_HW, DIT_HW, generator=torch.Generator().manual_seed(7))
    other_neg = (torch.randn_like(neg[0][0]), torch.randn_like(neg[0][1]["pooled_output"]))
    sigma = torch.full((2 * f,), 0.7)

    def run(inp, neg_ctx, neg_pooled, cou):
        to = dict(patched.model_options["transformer_options"])
        to["cond_or_uncond"] = cou
        extra = {"y": torch.cat([neg_pooled.expand(f, -1), pooled(pos)])}
        if name == "flux":
            extra["guidance"] = torch.full((2 * f,), 3.5)
        with torch.inference_mode():
            return patched.model.apply_model(inp, sigma, c_crossattn=torch.cat([neg_ctx.expand(f, -1, -1), ctx(pos)]),
                                             transformer_options=to, **extra)

    a = run(x, neg[0][0], neg[0][1]["pooled_output"], [1, 0])
    b = run(y, *other_neg, [1, 0])
    assert torch.equal(a[f:], b[f:])
    assert not torch.allclose(a[:f], b[:f])
    a1, b1 = run(x, neg[0][0], neg[0][1]["pooled_output"], [0]), run(y, *other_neg, [0])
    assert (a1[f:] - b1[f:]).abs().max() > 1e-3                 # control: one chunk of 2F frames mixes


def test_dit_chains_an_existing_attention_override(zs2, bridge, dit):
    """An attention override already on the MODEL (another node's) still runs, on TMA's K', V'."""
    name, model, conds = dit
    calls = []
    first = bridge.add_attention_override(model, capture_attention(calls))
    patched = tma(zs2, first, 1.0)
    assert bridge.attention_override(patched).previous is not None
    dit_denoise(bridge, patched, conds, _dit_x(seed=8))
    k = calls[0]["args"][1]
    assert len(calls) == {"flux": 2, "sd3": 3}[name]
    assert torch.equal(k[1:DIT_FRAMES], k[:1].expand(DIT_FRAMES - 1, *k.shape[1:]))    # saw frame 1's K


def test_sd15_override_path_matches_attn1_path(zs2, bridge, sd15, conds):
    """On SD1.5 the node keeps the attn1 patch (averaging the normed hidden states before the K/V
    projections); the DiT attention override (averaging the projected K, V) gives the same model
    output up to float rounding: Eq. 2 is linear and its rows sum to 1."""
    tm = pack_module(pack_of(zs2), "nodes.comfy_bridge")
    x = _x(seed=9)
    for mu in (0.5, 0.98, 1.0):
        attn1 = denoise(bridge, tma(zs2, sd15, mu), conds, x)
        over = denoise(bridge, bridge.add_attention_override(sd15, lambda prev: tm.TemporalMomentumAttentionOverride(mu, prev)),
                       conds, x)
        assert torch.allclose(attn1, over, atol=1e-4, rtol=1e-4), (mu, (attn1 - over).abs().max())


def test_dit_sampling_with_dependency_noise_deterministic_and_smoother(zs2, dit):
    """SamplerCustomAdvanced (Flux: BasicGuider as Flux users do; SD3: CFGGuider) on Dependency Noise +
    TMA: deterministic, finite, and the frame-to-frame change of the samples falls from mu = 0 to mu = 1
    (random weights make attention a small part of each block: measured flux 0.5871 -> 0.5842,
    sd3 0.4372 -> 0.4228)."""
    import comfy_extras.nodes_custom_sampler as cs
    name, model, (pos, neg) = dit
    lat = {"samples": torch.zeros(DIT_FRAMES, 16, DIT_HW, DIT_HW)}
    with torch.inference_mode():
        noise = zs2.DependencyNoise().get_noise(7, 0.3, 10, 15, "dependency", 0.9)[0]

        def run(mu):
            p = zs2.TemporalMomentumAttention().patch(model, mu)[0]
            g = (cs.BasicGuider().get_guider(p, pos) if name == "flux" else cs.CFGGuider().get_guider(p, pos, neg, 4.0))[0]
            sigmas = cs.BasicScheduler().get_sigmas(p, "simple", 3, 1.0)[0]
            sampler = cs.KSamplerSelect().get_sampler("euler")[0]
            return cs.SamplerCustomAdvanced().sample(noise, g, sampler, sigmas, lat)[0]["samples"]

        outs = {mu: run(mu) for mu in (0.0, 0.98, 1.0)}
        again = run(0.98)
    assert torch.equal(outs[0.98], again)
    assert all(torch.isfinite(o).all() for o in outs.values())
    assert (outs[0.98] - outs[0.0]).abs().max() > 1e-3
    assert frame_change(outs[1.0]) < frame_change(outs[0.0])
# --------------------------------------------------------------------------- per-frame lambda_i / mu_i

def test_schedule_inputs_are_optional_strings(zs2):
    for cls, name in ((zs2.DependencyNoise, "kl_lambda_schedule"), (zs2.DependencyNoiseModelPatch, "kl_lambda_schedule"),
                      (zs2.TemporalMomentumAttention, "momentum_schedule")):
        types = cls.INPUT_TYPES()
        assert name not in types["required"]
        kind, opts = types["optional"][name]
        assert kind == "STRING" and opts["default"] == "" and "start:end" in opts["tooltip"]


@pytest.mark.parametrize("text,match", [
    ("0, 0.9, x", r"'x' is not a number"),
    ("0.5, 1.5", r"mu_i = 1.5 is out of range: each mu_i must be a number >= 0 and <= 1"),
    ("-0.1:0.9", r"mu_i = -0.1 is out of range"),
    ("0,98", r"'0,98' is ambiguous: the comma in '0,98' reads as a decimal comma"),   # was [0, 98]: out of range
    ("0,9:0,99", r"'0,9:0,99' is ambiguous"),                                       # was "not a ramp"
])
def test_momentum_schedule_errors_name_node_and_input(zs2, sd15, text, match):
    with pytest.raises(ValueError, match=r"^Temporal Momentum Attention: momentum_schedule: " + match):
        zs2.TemporalMomentumAttention().patch(sd15, 0.98, text)


def test_momentum_schedule_equals_per_frame_reference(zs2, bridge, sd15, conds):
    """TMA with momentum_schedule in the real UNet equals Eq. 2 with mu_i per frame applied to the
    projected K/V per CFG chunk (mu_1 unused; '0.3, 0.9, 0.5, 1' -> mu_4..mu_8 = 1); a constant
    schedule equals the scalar exactly, and the empty schedule is the scalar."""
    x = _x(seed=7)
    with torch.inference_mode():
        ours = denoise(bridge, zs2.TemporalMomentumAttention().patch(sd15, 0.98, "0.3, 0.9, 0.5, 1")[0], conds, x)
    calls = []
    ref = denoise(bridge, reference_model(bridge, sd15, [0.3, 0.9, 0.5, 1, 1, 1, 1, 1], calls), conds, x)
    assert calls and torch.allclose(ours, ref, atol=1e-4, rtol=1e-4), (ours - ref).abs().max()
    scalar = denoise(bridge, tma(zs2, sd15, 0.9), conds, x)
    assert (ours - scalar).abs().max() > 1e-2
    with torch.inference_mode():
        const = zs2.TemporalMomentumAttention().patch(sd15, 0.5, "0.2, 0.9")[0]          # mu_2.. = 0.9
        empty = zs2.TemporalMomentumAttention().patch(sd15, 0.9, "")[0]
    assert torch.equal(denoise(bridge, const, conds, x), scalar)
    assert torch.equal(denoise(bridge, empty, conds, x), scalar)


def test_dit_momentum_schedule_equals_per_frame_reference(zs2, bridge):
    """TMA with momentum_schedule on a DiT image model (tiny Flux, attention override) equals Eq. 2 with
    mu_i per frame on the projected K, V of every self/joint attention per CFG chunk ('0, 0.3, 0.9, 0.5'
    -> mu_5, mu_6 = 0.5; mu_1 unused), differs from the scalar, and a constant schedule is the scalar."""
    from comfy_harness import flux_conds, tiny_flux
    model, conds = tiny_flux(seed=0), flux_conds(seed=0)
    x = _dit_x(seed=2)
    with torch.inference_mode():
        ours = dit_denoise(bridge, zs2.TemporalMomentumAttention().patch(model, 0.98, "0, 0.3, 0.9, 0.5")[0],
                           conds, x)
    ref = ReferenceTMA([0.0, 0.3, 0.9, 0.5, 0.5, 0.5], image="flux")
    expected = dit_denoise(bridge, bridge.add_attention_override(model, lambda prev: ref), conds, x)
    assert ref.calls == 2                                   # 1 double + 1 single block
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5), (ours - expected).abs().max()
    scalar = dit_denoise(bridge, tma(zs2, model, 0.9), conds, x)
    assert (ours - scalar).abs().max() > 1e-2
    with torch.inference_mode():
        const = zs2.TemporalMomentumAttention().patch(model, 0.5, "0.2, 0.9")[0]          # mu_2.. = 0.9
    assert torch.equal(dit_denoise(bridge, const, conds, x), scalar)

"""Temporal Momentum Attention on the image DiTs users run now, each a tiny random-weight model of the
real ComfyUI class (``tiny_image_dits``): HiDream I1 and E1 (edit, issue 20 item 5), Lumina 2, Z-Image
(its pixel-space variant, and Z-Image Omni with a reference image), Krea 2, Flux 2, Klein (Flux 2 without guidance, with a
reference image) and Qwen-Image 2512 (Qwen-Image's class). The property tests of ``test_zs2_tma_dit``
for Flux, per family: text (and reference-image, pad) K/V untouched in ``keep`` and the frame's own
image K/V by Eq. 2, every token in ``average``, identical frames unchanged, mu = 0 equals plain, the
input MODEL not mutated, extra memory at most two frames in float32. Families missing from the tested
ComfyUI skip with the reason (Z-Image, Krea 2 and Flux 2 are 0.33.x only)."""
import copy

import pytest
import torch

from comfy_harness import pack_module, qwen_conds, tiny_qwen_image
from test_zs2_tma import ReferenceTMA, capture_attention, dit_denoise
import tiny_image_dits as tid

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES = 4


def _latent(shape, seed):
    return torch.randn(FRAMES, *shape, generator=torch.Generator().manual_seed(seed)) * 1.5


def _ref(shape, seed=21):
    return torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))


# name -> (builder, conds, one frame's latent shape)
FAMILIES = {
    "hidream": (tid.tiny_hidream, lambda: tid.hidream_conds(), (16, 8, 8)),
    "hidream_e1": (tid.tiny_hidream, lambda: tid.hidream_conds(image_cond=_ref((16, 8, 8))), (16, 8, 8)),
    "lumina2": (tid.tiny_lumina2, lambda: tid.lumina2_conds(neg_tokens=4), (16, 8, 8)),
    "z_image": (tid.tiny_z_image, lambda: tid.lumina2_conds(), (16, 8, 8)),
    "z_image_pixel": (tid.tiny_z_image_pixel, lambda: tid.lumina2_conds(), (3, 32, 32)),
    "z_image_omni": (tid.tiny_z_image, lambda: tid.lumina2_conds(reference_latent=_ref((16, 4, 4))), (16, 8, 8)),
    "krea2": (tid.tiny_krea2, lambda: tid.krea2_conds(), (16, 1, 8, 8)),
    "flux2": (tid.tiny_flux2, lambda: tid.flux2_conds(), (128, 4, 4)),
    "klein_edit": (lambda seed=0: tid.tiny_flux2(seed, klein=True),
                   lambda: tid.flux2_conds(guidance=None, reference_latent=_ref((128, 2, 2))), (128, 4, 4)),
    "qwen_image_2512": (tiny_qwen_image, lambda: qwen_conds(seed=0), (16, 1, 8, 8)),
}
_BUILT = {}


@pytest.fixture(scope="module", autouse=True)
def _release_models():
    yield
    _BUILT.clear()                                      # drop the ModelPatchers before ComfyUI shuts down


@pytest.fixture(scope="module", params=list(FAMILIES))
def fam(request, pack):
    """(name, tiny model, (positive, negative), one frame's latent shape); skips when the tested
    ComfyUI has no such family."""
    name = request.param
    if name not in _BUILT:
        builder, conds, shape = FAMILIES[name]
        try:
            _BUILT[name] = (name, builder(seed=0), conds(), shape)
        except tid.Missing as e:
            _BUILT[name] = str(e)
        if name == "z_image_omni" and not isinstance(_BUILT[name], str):
            import comfy.ldm.lumina.model as lm
            if not hasattr(lm.NextDiT, "embed_all"):
                _BUILT[name] = "this ComfyUI's NextDiT takes no reference images (Z-Image Omni)"
    if isinstance(_BUILT[name], str):
        pytest.skip(_BUILT[name])
    return _BUILT[name]


def expected_tokens(name, k, n, batch, frames_batch):
    """The frame's own image tokens (a LongTensor of token indices) in call ``k`` (0-based, within one
    model call) of ``n`` tokens and batch ``batch``, from each tiny model's facts (8x8 latents, patch 2:
    16 tokens; Flux 2 4x4, patch 1: 16 tokens), or None: nothing of the call is averaged. Asserts the
    token counts the layout implies."""
    ar = torch.arange
    if name in ("hidream", "hidream_e1"):
        if name == "hidream":
            return ar(16)                                                   # [image 16, text]
        return (ar(4) * 8).unsqueeze(1).add(ar(4)).flatten()                # 4 rows of [target 4, reference 4]
    if name == "lumina2":                                                   # refiner(caption), refiner(image), 2 main
        if k == 0:
            return None
        if k == 1:
            assert n == 16
            return ar(16)
        assert n in (6 + 16, 4 + 16)                                        # [caption 6 (negative: 4), image 16]
        return ar(n - 16, n)
    if name in ("z_image", "z_image_pixel"):                                # groups padded to 32 tokens (pixel: 8x8 patches)
        if k == 0:
            assert n == 32
            return None
        assert n == (32 if k == 1 else 64)
        return ar(n - 32, n - 16)                                           # [(caption 32,) image 16, pad 16]
    if name == "z_image_omni":
        if k == 0:
            assert n == 64                                                  # reference's caption pad 32, caption 32
            return None
        assert n == (64 if k == 1 else 128)                                 # [(captions 64,) reference 4 + 28 pad, image 16 + 16 pad]
        return ar(n - 32, n - 16)
    if name == "krea2":
        if batch != frames_batch or n == 6:                                 # text fusion (over text layers / tokens)
            return None
        assert n == 6 + 16
        return ar(6, 22)                                                    # [text 6, image 16]
    if name in ("flux2", "klein_edit"):
        assert n == 512 + 16 + (4 if name == "klein_edit" else 0)           # [text padded to 512, image 16, reference 4]
        return ar(512, 528)
    if name == "qwen_image_2512":
        assert n == 7 + 16
        return ar(7, 23)                                                    # [text 7, image 16]
    raise AssertionError(name)


def _info(kwargs):
    to = kwargs["transformer_options"]
    return next(v for k, v in to.items() if k.startswith("training_free_video.zs2_temporal_momentum"))


def _calls_with_index(calls):
    """(call, index of the call within its model call) for captured attention calls, grouped by the
    model call's AttentionCallInfo (one per model call)."""
    out, last, k = [], None, 0
    for c in calls:
        info = _info(c["kwargs"])
        k = k + 1 if info is last else 0
        last = info
        out.append((c, k))
    return out


def tma(zs2, model, mu, text_tokens="keep"):
    with torch.inference_mode():
        return zs2.TemporalMomentumAttention().patch(model, mu, "", text_tokens)[0]


def _capture(zs2, bridge, model, conds, x, mu, text_tokens="keep"):
    before, after = [], []
    inner = bridge.add_attention_override(model, capture_attention(after))      # called by TMA with K', V'
    patched = bridge.add_attention_override(tma(zs2, inner, mu, text_tokens), capture_attention(before))
    dit_denoise(bridge, patched, conds, x)
    assert len(before) == len(after) > 0
    return before, after


@pytest.mark.parametrize("text_tokens", ["keep", "average"])
def test_kv_follow_eq2_on_the_frames_own_image_tokens(zs2, bridge, fam, text_tokens):
    """Every attention call: in 'keep' the text, reference-image and pad tokens' K, V reach the kernel
    exactly as the model computed them and the frame's own image tokens carry Eq. 2 (explicit recursion
    per CFG chunk); in 'average' every token of each call over the frames carries Eq. 2. Calls that
    are not over the frames (Krea 2's text fusion over text layers) pass unchanged in both."""
    name, model, conds, shape = fam
    before, after = _capture(zs2, bridge, model, conds, _latent(shape, 11), 0.9, text_tokens)
    ref = ReferenceTMA(0.9)
    averaged = kept_differs = 0
    for (b, k_idx), a in zip(_calls_with_index(before), after):
        q, k, v = b["args"][:3]
        k2, v2 = a["args"][1:3]
        ax = 2 if b["kwargs"].get("skip_reshape") else 1
        n, batch = q.shape[ax], q.shape[0]
        chunks = len(b["kwargs"]["transformer_options"]["cond_or_uncond"])
        frames_batch = FRAMES * chunks
        own = expected_tokens(name, k_idx, n, batch, frames_batch)
        if text_tokens == "average":
            own = torch.arange(n) if batch == frames_batch else None
        for t, t2 in ((k, k2), (v, v2)):
            if own is None:
                assert torch.equal(t, t2)
                continue
            rest = torch.ones(n, dtype=torch.bool)
            rest[own] = False
            rest = rest.nonzero().flatten()
            assert torch.equal(t.index_select(ax, rest), t2.index_select(ax, rest))   # text / reference / pad
            img = ref.momentum(t.index_select(ax, own), chunks)
            assert torch.allclose(t2.index_select(ax, own), img, atol=1e-5, rtol=1e-5)
            if text_tokens == "keep" and rest.numel():
                kept = t.index_select(ax, rest)
                if (kept[1:FRAMES] - kept[:1]).abs().max() > 1e-4:           # differs per frame: averaging would change it
                    kept_differs += 1
        if own is not None:
            averaged += 1
    assert averaged >= 2
    if text_tokens == "keep":
        assert kept_differs >= 1, "no kept token differs per frame: the test would not see them averaged"


def test_identical_frames_unchanged_and_mu0_equals_plain(zs2, bridge, fam):
    """A still video (identical frames) comes out of the TMA model exactly as from the plain model (Eq. 2
    of identical K, V is K, V bit for bit); mu = 0 equals the plain model exactly; mu = 0.98 differs."""
    name, model, conds, shape = fam
    still = _latent(shape, 12)[:1].expand(FRAMES, *shape).clone()
    plain = dit_denoise(bridge, model, conds, still)
    assert torch.equal(dit_denoise(bridge, tma(zs2, model, 0.98), conds, still), plain)
    x = _latent(shape, 13)
    plain = dit_denoise(bridge, model, conds, x)
    assert torch.equal(dit_denoise(bridge, tma(zs2, model, 0.0), conds, x), plain)
    assert (dit_denoise(bridge, tma(zs2, model, 0.98), conds, x) - plain).abs().max() > 1e-3


def test_input_model_not_mutated(zs2, bridge, fam):
    """Patching and sampling leave the input MODEL's options and weights as they were."""
    name, model, conds, shape = fam
    options = copy.copy(model.model_options)
    to = dict(model.model_options.get("transformer_options", {}))
    weights = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    patched = tma(zs2, model, 0.98)
    dit_denoise(bridge, patched, conds, _latent(shape, 14))
    assert bridge.attention_override(model) is None
    assert type(bridge.attention_override(patched)).__name__ == "TemporalMomentumAttentionOverride"
    assert model.model_options.keys() == options.keys() and model.model_options.get("transformer_options", {}) == to
    assert all(torch.equal(v, weights[k]) for k, v in model.model.diffusion_model.state_dict().items())


def test_extra_memory_at_most_two_frames_in_float32(zs2, bridge, fam, pack):
    """On the largest attention call of the family (its K, V cast to bf16, as a bf16 model computes
    them), TMA's averaging allocates beyond its result at most two frames of the averaged tokens in
    float32 (measured with torch's allocator)."""
    import sys
    from comfy_harness import REPO_ROOT
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from benchmarks.allocator import allocator_peak
    tm = pack_module(pack, "attention.temporal_momentum")
    name, model, conds, shape = fam
    calls = []
    patched = bridge.add_attention_override(tma(zs2, model, 0.9), capture_attention(calls))
    dit_denoise(bridge, patched, conds, _latent(shape, 15))
    call = max(calls, key=lambda c: c["args"][1].numel())
    q, k, v = (t.to(torch.bfloat16) for t in call["args"][:3])
    to = call["kwargs"]["transformer_options"]
    ax = 2 if call["kwargs"].get("skip_reshape") else 1
    info = _info(call["kwargs"])
    span = info.image_span(int(q.shape[ax])) if info.image_span is not None else (0, q.shape[ax])
    own = span[1] - span[0] if len(span) == 2 else (span[1] - span[0]) // span[2] * span[3]
    frame = k[0].numel() // k.shape[ax] * own
    groups = len(to["cond_or_uncond"])
    peak, out = allocator_peak(lambda: tm.temporal_momentum(k, 0.9, groups, tokens=span, token_dim=ax))
    assert peak - k.numel() * k.element_size() <= 2 * frame * 4, (peak, frame)
    assert out.dtype == torch.bfloat16 and not torch.equal(out, k)


def test_hidream_e1_reference_tokens_untouched(zs2, bridge, pack):
    """Issue 20 item 5: HiDream E1 appends the reference image (``image_cond``) to the latent along the
    width before splitting rows into tokens, so each row of image tokens holds 4 target tokens then 4
    reference tokens. TMA ('keep') averages the target's own 16 tokens only: the reference tokens and
    the text reach the kernel unchanged (before the fix the first 16 tokens -- the top two rows, half
    of them reference tokens -- were averaged, and the target's bottom rows were not)."""
    model = tid.tiny_hidream(seed=0)
    conds = tid.hidream_conds(image_cond=_ref((16, 8, 8)))
    before, after = _capture(zs2, bridge, model, conds, _latent((16, 8, 8), 16), 0.9)
    ref = ReferenceTMA(0.9)
    target = (torch.arange(4) * 8).unsqueeze(1).add(torch.arange(4)).flatten()
    reference = target + 4
    for b, a in zip(before, after):
        k, k2 = b["args"][1], a["args"][1]
        assert k.shape[1] > 32                                              # 4 x 8 image tokens, then text
        assert torch.equal(k[:, reference], k2[:, reference]) and torch.equal(k[:, 32:], k2[:, 32:])
        chunks = len(b["kwargs"]["transformer_options"]["cond_or_uncond"])
        assert torch.allclose(k2[:, target], ref.momentum(k[:, target], chunks), atol=1e-5, rtol=1e-5)
    k = before[-1]["args"][1]
    assert (k[1:FRAMES, reference] - k[:1, reference]).abs().max() > 1e-4  # they differ per frame there


def test_text_tokens_keep_is_the_default_on_lumina2_and_z_image(zs2, pack):
    """The node's default (text_tokens keep) works on Lumina 2 and Z-Image (it used to stop with
    'Lumina 2 ... set average')."""
    with torch.inference_mode():
        for build in (tid.tiny_lumina2, tid.tiny_z_image):
            try:
                model = build(seed=0)
            except tid.Missing:
                continue
            patched = zs2.TemporalMomentumAttention().patch(model, 0.98)[0]
            assert bridge_override(patched).image_only


def bridge_override(model):
    return model.model_options["transformer_options"]["optimized_attention_override"]


# --------------------------------------------------------------------------- distilled few-step sampling (issue 21 item 3)

def _node_out(out):
    return out[0] if isinstance(out, tuple) else out.result[0]


def _adjacent_correlation(video):
    """Mean Pearson correlation of adjacent frames of a latent video ``[F, ...]``."""
    f = video.reshape(video.shape[0], -1).double()
    f = f - f.mean(dim=1, keepdim=True)
    f = f / f.norm(dim=1, keepdim=True)
    return float((f[1:] * f[:-1]).sum(dim=1).mean())


@pytest.mark.parametrize("turbo", ["z_image_turbo", "krea2_turbo"])
def test_dependency_noise_and_tma_under_the_turbo_templates_settings(zs2, pack, turbo):
    """Dependency Noise (KSampler) + TMA under the stock templates' own settings (image_z_image_turbo:
    ModelSamplingAuraFlow shift 3, EmptySD3LatentImage, KSampler 8 steps CFG 1 res_multistep simple;
    image_krea2_turbo_t2i: EmptyLatentImage, KSampler 8 steps CFG 1 euler simple; both with
    ConditioningZeroOut as the negative), batch = 6 frames, tiny models: the video has 6 frames, every
    adjacent pair differs, and adjacent frames correlate more than the same graph on the KSampler's own
    independent noise."""
    import comfy_extras.nodes_model_advanced as adv
    import nodes
    frames = 6
    try:
        model = tid.tiny_z_image(seed=0) if turbo == "z_image_turbo" else tid.tiny_krea2(seed=0)
    except tid.Missing as e:
        pytest.skip(str(e))
    pos = (tid.lumina2_conds() if turbo == "z_image_turbo" else tid.krea2_conds())[0]
    with torch.inference_mode():
        neg = nodes.ConditioningZeroOut().zero_out(pos)[0]
        if turbo == "z_image_turbo":
            model = adv.ModelSamplingAuraFlow().patch_aura(model, 3.0)[0]
            latent = _node_out(nodes.NODE_CLASS_MAPPINGS["EmptySD3LatentImage"].execute(64, 64, frames))
            sampler = "res_multistep"
        else:
            latent = nodes.EmptyLatentImage().generate(64, 64, frames)[0]
            sampler = "euler"
        patched = zs2.TemporalMomentumAttention().patch(model, 0.98)[0]
        dependent = zs2.DependencyNoiseModelPatch().patch(patched, 0.01, 10, 15, "dependency", 0.9)[0]
        video = nodes.KSampler().sample(dependent, 3, 8, 1.0, sampler, "simple", pos, neg, latent)[0]["samples"]
        independent = nodes.KSampler().sample(patched, 3, 8, 1.0, sampler, "simple", pos, neg, latent)[0]["samples"]
    assert video.shape[0] == frames and torch.isfinite(video).all()
    assert all((video[i + 1] - video[i]).abs().max() > 1e-3 for i in range(frames - 1))
    dep, ind = _adjacent_correlation(video), _adjacent_correlation(independent)
    print(f"{turbo}: adjacent-frame correlation {dep:.4f} (dependency noise) vs {ind:.4f} (independent noise)")
    assert dep > ind + 0.1, (dep, ind)


def test_klein_kv_cache_edit_keeps_tma_on(zs2, bridge, pack):
    """Klein image edit with ComfyUI's FluxKVCache (image_flux2_klein_9b_kv_image_edit): from the second
    model call on, the reference image's K, V come from the cache, appended after the call's own
    [text, image] tokens, so K/V have more tokens than Q. TMA still averages the frame's image tokens
    there (it used to pass such calls as cross-attention: TMA silently off after the first step) and
    leaves the text and the cached reference tokens untouched."""
    import comfy_extras.nodes_custom_sampler as cs
    import nodes
    try:
        model = tid.tiny_flux2(seed=0, klein=True)
    except tid.Missing as e:
        pytest.skip(str(e))
    if "FluxKVCache" not in nodes.NODE_CLASS_MAPPINGS:
        pytest.skip("this ComfyUI has no FluxKVCache node")
    pos, _ = tid.flux2_conds(guidance=None, reference_latent=_ref((128, 2, 2)))
    before, after = [], []
    with torch.inference_mode():
        cached = _node_out(nodes.NODE_CLASS_MAPPINGS["FluxKVCache"].execute(model))
        inner = bridge.add_attention_override(cached, capture_attention(after))
        patched = bridge.add_attention_override(zs2.TemporalMomentumAttention().patch(inner, 0.9)[0],
                                                capture_attention(before))
        lat = {"samples": torch.zeros(FRAMES, 128, 4, 4)}
        guider = cs.CFGGuider().get_guider(patched, pos, pos, 1.0)[0]
        sigmas = cs.BasicScheduler().get_sigmas(patched, "simple", 2, 1.0)[0]
        from comfy_harness import sample_custom_advanced
        sample_custom_advanced(cs.RandomNoise().get_noise(1)[0], guider, cs.KSamplerSelect().get_sampler("euler")[0],
                               sigmas, lat)
    ref = ReferenceTMA(0.9)
    with_cache = 0
    for b, a in zip(before, after):
        q, k = b["args"][0], b["args"][1]
        k2 = a["args"][1]
        if k.shape[2] == q.shape[2]:
            continue
        with_cache += 1
        assert q.shape[2] == 512 + 16 and k.shape[2] == 512 + 16 + 4      # [text, image] + cached reference
        assert torch.equal(k[:, :, :512], k2[:, :, :512]) and torch.equal(k[:, :, 528:], k2[:, :, 528:])
        chunks = len(b["kwargs"]["transformer_options"]["cond_or_uncond"])
        assert torch.allclose(k2[:, :, 512:528], ref.momentum(k[:, :, 512:528], chunks), atol=1e-5, rtol=1e-5)
    assert with_cache == 2                                                  # double + single block of step 2


def test_nextdit_call_that_does_not_fit_its_phase_is_a_clear_error(bridge, pack):
    """Lumina 2 / Z-Image: the call's place in NextDiT's order gives its phase; a call whose token count
    does not fit that phase (e.g. another node changed the model's calls) stops with an error naming the
    fix instead of averaging the wrong tokens. Caption-refiner calls have no image tokens."""
    tm = pack_module(pack, "nodes.comfy_bridge")
    for build in (tid.tiny_lumina2, tid.tiny_z_image):
        try:
            model = build(seed=0)
        except tid.Missing:
            continue
        x, ctx = torch.zeros(2, 16, 8, 8), torch.zeros(2, 6, 12)
        info = tm.AttentionCallInfo()
        span = bridge.dit_image_token_span(model)(x, ctx, {"num_tokens": 6}, info)
        info.calls = 1
        assert span(32 if build is tid.tiny_z_image else 6) == (0, 0)       # caption refiner (Z-Image: padded)
        info.calls = 2                                                       # noise refiner: the image alone
        with pytest.raises(ValueError, match="Set text_tokens to 'average'"):
            span(17)
        info.calls = 3                                                       # main layer
        with pytest.raises(ValueError, match="cannot place the 16 image tokens"):
            span(20)

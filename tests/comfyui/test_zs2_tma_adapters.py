"""Temporal Momentum Attention's ComfyUI adapters (nodes/comfy_bridge/attention.py): the UNet attn1 patch
and the DiT attention override over ZS^2 Eq. 2 (the averaging itself is tested in
tests/core/test_temporal_momentum.py). They speak ComfyUI's protocols (cond_or_uncond chunks,
AnimateDiff-Evolved's ad_params, the override's arguments), so they live in the bridge and run here,
inside a real ComfyUI."""
import pytest
import torch

from comfy_harness import pack_module


@pytest.fixture(scope="module")
def bridge(pack):
    return pack_module(pack, "nodes.comfy_bridge")


def _core(name: str):
    """The pack's own core function/class (ComfyUI loaded the pack under its folder's name)."""
    from comfy_harness import boot
    module = "samplers.frame_schedule" if name == "FrameSchedule" else "attention.temporal_momentum"
    return getattr(pack_module(boot(), module), name)


def FrameSchedule(*args, **kwargs):
    return _core("FrameSchedule")(*args, **kwargs)


def temporal_momentum_recursive(x, mu, groups=1):
    """Eq. 2 by its recursion, the reference (checked against the written-out sum in
    tests/core/test_temporal_momentum.py)."""
    return _core("temporal_momentum_recursive")(x, mu, groups)


explicit_eq2 = explicit_recursion = temporal_momentum_recursive


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def test_patch_groups_by_cond_or_uncond_and_keeps_queries(bridge):
    p = bridge.TemporalMomentumPatch(0.7)
    n = torch.randn(12, 5, 4)
    q, k, v = p(n, n, n, {"cond_or_uncond": [1, 0, 0]})            # 3 chunks of 4 frames
    assert q is n and k is v
    assert torch.allclose(k, temporal_momentum_recursive(n, 0.7, 3), atol=1e-6)
    # An earlier patch replaced the K/V sources: both are averaged, separately.
    c, val = torch.randn(12, 9, 4), torch.randn(12, 9, 4)
    q, k, v = p(n, c, val, {"cond_or_uncond": [1, 0]})
    assert torch.allclose(k, temporal_momentum_recursive(c, 0.7, 2), atol=1e-6)
    assert torch.allclose(v, temporal_momentum_recursive(val, 0.7, 2), atol=1e-6)
    # None context means "n"; a batch-1 shared tensor is left alone.
    q, k, v = p(n, None, None, {"cond_or_uncond": [0]})
    assert torch.allclose(k, temporal_momentum_recursive(n, 0.7, 1), atol=1e-6) and v is None
    shared = torch.randn(1, 9, 4)
    assert p(n, shared, shared, {"cond_or_uncond": [0]})[1] is shared
    with pytest.raises(ValueError, match="Temporal Momentum Attention"):
        p(torch.randn(7, 5, 4), None, None, {"cond_or_uncond": [1, 0]})


def test_context_window_call_starts_afresh_at_window_start(bridge):
    """AnimateDiff-Evolved context windows call the model with only the window's frames (per CFG
    chunk); the momentum average then runs over the window and starts afresh at its first frame."""
    video = torch.randn(2, 16, 5, 4, generator=torch.Generator().manual_seed(0))   # [chunks, frames, tokens, C]
    window = [6, 7, 8, 9]
    n = video[:, window].reshape(8, 5, 4)
    extra = {"cond_or_uncond": [1, 0], "ad_params": {"full_length": 16, "context_length": 4, "sub_idxs": window}}
    _, k, _ = bridge.TemporalMomentumPatch(0.9)(n, n, n, extra)
    k = k.reshape(2, 4, 5, 4)
    assert torch.equal(k[:, 0], video[:, 6])                        # window's first frame: its own K
    expected = torch.stack([explicit_eq2(video[c, window], 0.9) for c in range(2)])
    assert torch.allclose(k, expected, atol=1e-6)


def _attend(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, **kwargs):
    """A stand-in for ComfyUI's attention function (same signature): records what it received."""
    _attend.seen = (q, k, v, heads, skip_reshape, kwargs)
    return q.clone()


@pytest.mark.parametrize("layout", ["skip_reshape", "flat", "sd3_v"])
def test_override_averages_self_attention_k_v_per_chunk(bridge, layout):
    heads, n, d, b = 2, 10, 4, 12
    if layout == "skip_reshape":                           # Flux / Lumina: [B, heads, tokens, dim_head]
        shape, kw = (b, heads, n, d), {"skip_reshape": True}
    else:                                                  # SD3 / Qwen / HiDream: [B, tokens, heads * dim_head]
        shape, kw = (b, n, heads * d), {}
    q, k = torch.randn(shape), torch.randn(shape)
    v = torch.randn(b, n, heads, d) if layout == "sd3_v" else torch.randn(shape)
    to = {"cond_or_uncond": [1, 0, 0]}
    ov = bridge.TemporalMomentumAttentionOverride(0.7)
    ov(_attend, q, k, v, heads, transformer_options=to, _inside_attn_wrapper=True, **kw)
    q2, k2, v2, h2, skip, rest = _attend.seen
    assert q2 is q and h2 == heads and rest["transformer_options"] is to and rest["_inside_attn_wrapper"]
    assert torch.allclose(k2, temporal_momentum_recursive(k, 0.7, 3), atol=1e-6)
    assert torch.allclose(v2, temporal_momentum_recursive(v, 0.7, 3), atol=1e-6)


def test_override_leaves_cross_attention_and_other_batches_alone(bridge):
    ov = bridge.TemporalMomentumAttentionOverride(0.9)
    to = {"cond_or_uncond": [1, 0]}
    q = torch.randn(8, 16, 8)
    ctx = torch.randn(8, 7, 8)                                       # cross-attention to 7 text tokens
    ov(_attend, q, ctx, ctx, 2, transformer_options=to)
    assert _attend.seen[1] is ctx and _attend.seen[2] is ctx
    q4 = torch.randn(8, 2, 16, 4)
    k4 = torch.randn(8, 2, 7, 4)                                     # skip_reshape layout, tokens on axis 2
    ov(_attend, q4, k4, k4, 2, skip_reshape=True, transformer_options=to)
    assert _attend.seen[1] is k4
    shared = torch.randn(1, 16, 8)                                   # batch-1 K/V shared by all frames
    ov(_attend, q, shared, shared, 2, transformer_options=to)
    assert _attend.seen[1] is shared
    k = torch.randn(8, 16, 8)
    ov(_attend, q, k, k, 2, transformer_options=to)                  # self-attention: averaged, once
    assert _attend.seen[1] is _attend.seen[2] and not torch.equal(_attend.seen[1], k)
    bridge.TemporalMomentumAttentionOverride(0.0)(_attend, q, k, k, 2, transformer_options=to)
    assert _attend.seen[1] is k                                      # mu = 0: untouched
    with pytest.raises(ValueError, match="Temporal Momentum Attention: batch 8 does not split"):
        ov(_attend, q, k, k, 2, transformer_options={"cond_or_uncond": [1, 0, 0]})


def test_override_positional_skip_reshape_and_previous_override(bridge):
    seen = []

    def previous(func, *args, **kwargs):
        seen.append(args)
        return func(*args, **kwargs)

    ov = bridge.TemporalMomentumAttentionOverride(1.0, previous=previous)
    q, k = torch.randn(4, 2, 5, 3), torch.randn(4, 2, 5, 3)
    ov(_attend, q, k, k, 2, None, None, True, transformer_options={"cond_or_uncond": [0, 1]})
    assert len(seen) == 1 and _attend.seen[4] is True
    k2 = _attend.seen[1]
    assert torch.equal(k2[:2], k[:1].expand(2, -1, -1, -1)) and torch.equal(k2[2:], k[2:3].expand(2, -1, -1, -1))


def test_patch_resolves_schedule_per_call_and_per_chunk(bridge):
    """The patch resolves the schedule to the frames of each CFG chunk at call time (repeat-last)."""
    p = bridge.TemporalMomentumPatch(FrameSchedule((0.0, 0.2, 0.9)))
    n = torch.randn(10, 5, 4)                                       # 2 chunks x 5 frames
    _, k, _ = p(n, n, n, {"cond_or_uncond": [1, 0]})
    assert torch.allclose(k, temporal_momentum_recursive(n, [0.0, 0.2, 0.9, 0.9, 0.9], 2), atol=1e-6)
    n3 = torch.randn(3, 5, 4)                                       # another call, 1 chunk x 3 frames
    _, k, _ = p(n3, n3, n3, {"cond_or_uncond": [0]})
    assert torch.allclose(k, explicit_recursion(n3, [0.0, 0.2, 0.9]), atol=1e-6)


def test_context_window_follows_global_frame_indices(bridge):
    """Under AnimateDiff-Evolved context windows mu_i follows the frames' global indices (sub_idxs,
    resolved to full_length); the window's first frame still keeps its own K."""
    ramp = FrameSchedule((0.0, 0.75), ramp=True)                    # 16 frames: mu_g = 0.05 * g (0-based g)
    mus = ramp.resolve(16)
    video = torch.randn(2, 16, 5, 4, generator=torch.Generator().manual_seed(2))
    for window in ([6, 7, 8, 9], [14, 15, 0, 1]):
        n = video[:, window].reshape(8, 5, 4)
        ad = {"cond_or_uncond": [1, 0], "ad_params": {"full_length": 16, "context_length": 4, "sub_idxs": window}}
        _, k, _ = bridge.TemporalMomentumPatch(ramp)(n, n, n, ad)
        expected = torch.stack([explicit_recursion(video[c, window], [mus[g] for g in window]) for c in range(2)])
        assert torch.allclose(k.reshape(2, 4, 5, 4), expected, atol=1e-6)
        assert torch.equal(k.reshape(2, 4, 5, 4)[:, 0], video[:, window[0]])
    # not windowed (ADE passes sub_idxs None): frames 1..F of the call
    n = video[0, :4]
    _, k, _ = bridge.TemporalMomentumPatch(ramp)(n, n, n, {"cond_or_uncond": [0], "ad_params": {"sub_idxs": None}})
    assert torch.allclose(k, explicit_recursion(n, ramp.resolve(4)), atol=1e-6)


def test_override_call_info_image_span_and_call_count(bridge):
    """With an bridge.AttentionCallInfo under its info_key, the override averages only the image span of
    self/joint attention (image_only), counts every call (cross-attention too), and averages every
    token with image_only=False."""
    q = torch.randn(8, 2, 10, 4)
    k, v = torch.randn(8, 2, 10, 4), torch.randn(8, 2, 10, 4)
    info = bridge.AttentionCallInfo(lambda n: (3, n - 1))
    to = {"cond_or_uncond": [1, 0], "ov": info}
    bridge.TemporalMomentumAttentionOverride(0.8, info_key="ov")(_attend, q, k, v, 2, skip_reshape=True, transformer_options=to)
    k2, v2 = _attend.seen[1:3]
    assert info.calls == 1
    for t, t2 in ((k, k2), (v, v2)):
        assert torch.equal(t2[:, :, :3], t[:, :, :3]) and torch.equal(t2[:, :, 9:], t[:, :, 9:])
        assert torch.allclose(t2[:, :, 3:9], temporal_momentum_recursive(t[:, :, 3:9], 0.8, 2), atol=1e-6)
    ctx = torch.randn(8, 2, 7, 4)                                          # cross-attention: counted, untouched
    bridge.TemporalMomentumAttentionOverride(0.8, info_key="ov")(_attend, q, ctx, ctx, 2, skip_reshape=True,
                                                          transformer_options=to)
    assert info.calls == 2 and _attend.seen[1] is ctx
    bridge.TemporalMomentumAttentionOverride(0.8, image_only=False, info_key="ov")(_attend, q, k, v, 2, skip_reshape=True,
                                                                           transformer_options=to)
    assert torch.allclose(_attend.seen[1], temporal_momentum_recursive(k, 0.8, 2), atol=1e-6)


def test_override_passes_calls_of_another_batch_than_the_frames(bridge):
    """Call info ``batch``: a self-attention call whose batch is not the frames' (Krea 2's text fusion
    over batch x text tokens samples) passes unchanged, counted; the frames' batch is averaged."""
    info = bridge.AttentionCallInfo(batch=8)
    to = {"cond_or_uncond": [1, 0], "ov": info}
    ov = bridge.TemporalMomentumAttentionOverride(0.8, image_only=False, info_key="ov")
    t = torch.randn(24, 2, 3, 4)                                           # 8 samples x 3 text tokens
    ov(_attend, t, t, t, 2, skip_reshape=True, transformer_options=to)
    assert _attend.seen[1] is t and info.calls == 1
    k = torch.randn(8, 2, 5, 4)
    ov(_attend, k, k, k, 2, skip_reshape=True, transformer_options=to)
    assert torch.allclose(_attend.seen[1], temporal_momentum_recursive(k, 0.8, 2), atol=1e-6) and info.calls == 2

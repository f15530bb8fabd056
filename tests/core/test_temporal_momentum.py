"""Temporal Momentum Attention, ZS^2 Eq. 2 (docs/algorithms.md section 3.2): pure-torch checks."""
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from training_free_video.attention.temporal_momentum import (
    TemporalMomentumAttentionOverride, TemporalMomentumPatch, averaging_dtype, momentum_weights, temporal_momentum,
    temporal_momentum_recursive)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.allocator import allocator_peak  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def explicit_eq2(x, mu):
    """Eq. 2 written out for one video ``[F, ...]``: K'_i = mu^(i-1) K_1 + sum_{j=2..i} (1-mu) mu^(i-j) K_j."""
    out = []
    for i in range(x.shape[0]):
        acc = mu ** i * x[0]
        for j in range(1, i + 1):
            acc = acc + (1 - mu) * mu ** (i - j) * x[j]
        out.append(acc)
    return torch.stack(out)


@pytest.mark.parametrize("mu", [0.0, 1e-6, 0.3, 0.5, 0.9, 0.98, 0.999999, 1.0])
@pytest.mark.parametrize("groups,frames", [(1, 8), (2, 8), (3, 5), (2, 1), (1, 24)])
def test_vectorised_equals_recursion(mu, groups, frames):
    x = torch.randn(groups * frames, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fast = temporal_momentum(x, mu, groups)
    rec = temporal_momentum_recursive(x, mu, groups)
    assert torch.allclose(fast, rec, atol=1e-12)
    for g in range(groups):          # and the closed form of Eq. 2, group by group
        sl = slice(g * frames, (g + 1) * frames)
        assert torch.allclose(fast[sl], explicit_eq2(x[sl], mu), atol=1e-12)


def test_not_the_buggy_listings():
    """Frame 3 depends on frame 1 (the listing's loop blends only frame i-1) and frame 2 is not the
    diagonal of the einsum listing."""
    x = torch.zeros(3, 2)
    x[0] = 1.0
    out = temporal_momentum(x, 0.5)
    assert torch.allclose(out[2], torch.full((2,), 0.25))       # 0.5^2 * K_1
    assert torch.allclose(out[1], torch.full((2,), 0.5))


def test_weights_rows_sum_to_one_and_special_cases():
    for mu in [0.0, 0.2, 0.98, 1.0]:
        w = momentum_weights(9, mu, dtype=torch.float64)
        assert torch.allclose(w.sum(1), torch.ones(9, dtype=torch.float64), atol=1e-12)
        assert torch.equal(w, torch.tril(w))
    assert torch.equal(momentum_weights(5, 0.0), torch.eye(5))
    one = torch.zeros(5, 5)
    one[:, 0] = 1
    assert torch.equal(momentum_weights(5, 1.0), one)


def test_mu_special_cases_exact():
    x = torch.randn(16, 7, 3)
    assert temporal_momentum(x, 0.0, 2) is x                       # mu = 0: self-attention, untouched
    y = temporal_momentum(x, 1.0, 2)                               # mu = 1: frame 1 of each group, exactly
    assert torch.equal(y[:8], x[:1].expand(8, 7, 3)) and torch.equal(y[8:], x[8:9].expand(8, 7, 3))
    single = torch.randn(2, 7, 3)
    assert temporal_momentum(single, 0.98, 2) is single            # one frame per group: untouched


def test_groups_never_mix():
    x = torch.randn(16, 4, 3)
    y = x.clone()
    y[:8] += torch.randn(8, 4, 3)                                   # perturb group 0 only
    a, b = temporal_momentum(x, 0.9, 2), temporal_momentum(y, 0.9, 2)
    assert torch.equal(a[8:], b[8:]) and not torch.allclose(a[:8], b[:8])


def test_dtype_and_errors():
    x = torch.randn(8, 4, 3).half()
    assert temporal_momentum(x, 0.98).dtype == torch.float16
    with pytest.raises(ValueError, match="momentum"):
        temporal_momentum(x, 1.5)
    with pytest.raises(ValueError, match="groups"):
        temporal_momentum(torch.randn(7, 2), 0.5, 2)
    with pytest.raises(ValueError, match="momentum"):
        TemporalMomentumPatch(-0.1)


class _Sizes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def test_no_frames_x_frames_x_tokens_tensor():
    x = torch.randn(2 * 16, 64, 32)                 # 2 chunks x 16 frames, 64 tokens, 32 channels
    with _Sizes() as sizes:
        temporal_momentum(x, 0.98, 2)
    assert sizes.max_numel <= x.numel()              # F x F x tokens x C would be 16x larger


def test_patch_groups_by_cond_or_uncond_and_keeps_queries():
    p = TemporalMomentumPatch(0.7)
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


def test_context_window_call_starts_afresh_at_window_start():
    """AnimateDiff-Evolved context windows call the model with only the window's frames (per CFG
    chunk); the momentum average then runs over the window and starts afresh at its first frame."""
    video = torch.randn(2, 16, 5, 4, generator=torch.Generator().manual_seed(0))   # [chunks, frames, tokens, C]
    window = [6, 7, 8, 9]
    n = video[:, window].reshape(8, 5, 4)
    extra = {"cond_or_uncond": [1, 0], "ad_params": {"full_length": 16, "context_length": 4, "sub_idxs": window}}
    _, k, _ = TemporalMomentumPatch(0.9)(n, n, n, extra)
    k = k.reshape(2, 4, 5, 4)
    assert torch.equal(k[:, 0], video[:, 6])                        # window's first frame: its own K
    expected = torch.stack([explicit_eq2(video[c, window], 0.9) for c in range(2)])
    assert torch.allclose(k, expected, atol=1e-6)


# --------------------------------------------------------------------------- precision (float32 averaging)

@pytest.mark.parametrize("frames,mu", [(8, 0.98), (16, 0.9), (24, 0.98)])
def test_bf16_is_averaged_in_float32(frames, mu):
    """bf16 activations: the result equals the float32 computation cast back once; it is the correctly
    rounded Eq. 2 almost everywhere, unlike the naive bf16 weight-matrix product (bf16 weights whose
    rows do not sum to 1: 0.98 -> 0.98046875)."""
    x = (torch.randn(frames, 64, 32, generator=torch.Generator().manual_seed(frames)) * 4 + 2).bfloat16()
    ours = temporal_momentum(x, mu)
    assert ours.dtype == torch.bfloat16
    assert torch.equal(ours, temporal_momentum(x.float(), mu).bfloat16())
    exact = temporal_momentum(x.double(), mu)
    w16 = momentum_weights(frames, mu, dtype=torch.bfloat16)
    assert (w16.double().sum(1) - 1).abs().max() > 1e-3                  # what a bf16 average would use
    naive = (w16 @ x.reshape(frames, -1)).reshape(x.shape)
    ours_ok = (ours == exact.bfloat16()).float().mean()
    naive_ok = (naive == exact.bfloat16()).float().mean()
    assert ours_ok > 0.999 and naive_ok < 0.9, (ours_ok, naive_ok)
    assert (ours.double() - exact).abs().max() < (naive.double() - exact).abs().max()


def test_averaging_dtype():
    assert averaging_dtype(torch.float16) == averaging_dtype(torch.bfloat16) == torch.float32
    assert averaging_dtype(torch.float32) == torch.float32 and averaging_dtype(torch.float64) == torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_rows_sum_to_exactly_one_identical_frames_unchanged(dtype):
    """K'_i = K'_{i-1} + (1 - mu) (K_i - K'_{i-1}) (lerp): the weights sum to exactly 1 by construction, so
    frames that are identical (a still video) come back bit for bit, where the plain float32 product
    W @ K rescales them by the rounded row sums."""
    frames, mu = 24, 0.98
    x = (torch.randn(1, 50, 8, generator=torch.Generator().manual_seed(1)) * 3).to(dtype).expand(frames, -1, -1)
    x = x.contiguous()
    assert torch.equal(temporal_momentum(x, mu), x)
    if dtype == torch.float32:
        w = momentum_weights(frames, mu)
        plain = (w @ x.reshape(frames, -1)).reshape(x.shape)
        assert not torch.equal(plain, x)                                  # float32 rows sum to 1 +- 1 ulp


# --------------------------------------------------------------------------- the attention override (DiT path)

def _attend(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, **kwargs):
    """A stand-in for ComfyUI's attention function (same signature): records what it received."""
    _attend.seen = (q, k, v, heads, skip_reshape, kwargs)
    return q.clone()


@pytest.mark.parametrize("layout", ["skip_reshape", "flat", "sd3_v"])
def test_override_averages_self_attention_k_v_per_chunk(layout):
    heads, n, d, b = 2, 10, 4, 12
    if layout == "skip_reshape":                           # Flux / Lumina: [B, heads, tokens, dim_head]
        shape, kw = (b, heads, n, d), {"skip_reshape": True}
    else:                                                  # SD3 / Qwen / HiDream: [B, tokens, heads * dim_head]
        shape, kw = (b, n, heads * d), {}
    q, k = torch.randn(shape), torch.randn(shape)
    v = torch.randn(b, n, heads, d) if layout == "sd3_v" else torch.randn(shape)
    to = {"cond_or_uncond": [1, 0, 0]}
    ov = TemporalMomentumAttentionOverride(0.7)
    ov(_attend, q, k, v, heads, transformer_options=to, _inside_attn_wrapper=True, **kw)
    q2, k2, v2, h2, skip, rest = _attend.seen
    assert q2 is q and h2 == heads and rest["transformer_options"] is to and rest["_inside_attn_wrapper"]
    assert torch.allclose(k2, temporal_momentum_recursive(k, 0.7, 3), atol=1e-6)
    assert torch.allclose(v2, temporal_momentum_recursive(v, 0.7, 3), atol=1e-6)


def test_override_leaves_cross_attention_and_other_batches_alone():
    ov = TemporalMomentumAttentionOverride(0.9)
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
    TemporalMomentumAttentionOverride(0.0)(_attend, q, k, k, 2, transformer_options=to)
    assert _attend.seen[1] is k                                      # mu = 0: untouched
    with pytest.raises(ValueError, match="Temporal Momentum Attention: batch 8 does not split"):
        ov(_attend, q, k, k, 2, transformer_options={"cond_or_uncond": [1, 0, 0]})


def test_override_positional_skip_reshape_and_previous_override():
    seen = []

    def previous(func, *args, **kwargs):
        seen.append(args)
        return func(*args, **kwargs)

    ov = TemporalMomentumAttentionOverride(1.0, previous=previous)
    q, k = torch.randn(4, 2, 5, 3), torch.randn(4, 2, 5, 3)
    ov(_attend, q, k, k, 2, None, None, True, transformer_options={"cond_or_uncond": [0, 1]})
    assert len(seen) == 1 and _attend.seen[4] is True
    k2 = _attend.seen[1]
    assert torch.equal(k2[:2], k[:1].expand(2, -1, -1, -1)) and torch.equal(k2[2:], k[2:3].expand(2, -1, -1, -1))
# --------------------------------------------------------------------------- per-frame mu_i

from training_free_video.attention.temporal_momentum import frame_momenta  # noqa: E402
from training_free_video.samplers.frame_schedule import FrameSchedule  # noqa: E402


def explicit_recursion(x, mus):
    """Eq. 2 with per-frame momentum for one video ``[F, ...]``: K'_1 = K_1, K'_i = mu_i K'_{i-1} + (1 - mu_i) K_i."""
    out = [x[0]]
    for i in range(1, x.shape[0]):
        out.append(mus[i] * out[-1] + (1 - mus[i]) * x[i])
    return torch.stack(out)


@pytest.mark.parametrize("mus", [[0.5, 0.0, 0.3, 0.9, 1.0, 0.98, 0.2, 0.7], [0.9, 1.0, 1.0, 0.0, 0.0, 0.5, 1.0, 0.0],
                                 [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.999]])
@pytest.mark.parametrize("groups", [1, 2, 3])
def test_per_frame_weights_equal_recursion(mus, groups):
    """The [F, F] weight matrix of a per-frame schedule reproduces the explicit recursion of Eq. 2
    with mu_i per frame; rows sum to 1, lower triangular, mu_1 unused."""
    frames = len(mus)
    x = torch.randn(groups * frames, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fast = temporal_momentum(x, mus, groups)
    assert torch.allclose(fast, temporal_momentum_recursive(x, mus, groups), atol=1e-12)
    for g in range(groups):
        sl = slice(g * frames, (g + 1) * frames)
        assert torch.allclose(fast[sl], explicit_recursion(x[sl], mus), atol=1e-12)
    w = momentum_weights(frames, mus, dtype=torch.float64)
    assert torch.allclose(w.sum(1), torch.ones(frames, dtype=torch.float64), atol=1e-12)
    assert torch.equal(w, torch.tril(w))
    assert torch.equal(w, momentum_weights(frames, [0.123] + mus[1:], dtype=torch.float64))    # mu_1 unused
    # W[i, i] = 1 - mu_i for i >= 2 (1-based) and W[i, j] = W[i-1, j] * mu_i below the diagonal.
    for i in range(1, frames):
        assert w[i, i].item() == pytest.approx(1 - mus[i], abs=1e-15)
        assert torch.allclose(w[i, :i], w[i - 1, :i] * mus[i], atol=1e-15)


def test_per_frame_mu_only_changes_its_frame_onward():
    """Changing mu_i changes K'_i and later frames only (the schedule acts per frame)."""
    x = torch.randn(8, 4, 3, dtype=torch.float64)
    a = temporal_momentum(x, [0.9] * 8)
    mus = [0.9] * 8
    mus[4] = 0.2
    b = temporal_momentum(x, mus)
    assert torch.equal(a[:4], b[:4]) and not torch.allclose(a[4], b[4])
    assert torch.allclose(b[4], 0.2 * a[3] + 0.8 * x[4])


def test_scalar_and_constant_schedule_identical():
    """The scalar path is today's code; a constant schedule (any mu_1) takes the same path exactly."""
    x = torch.randn(16, 7, 3)
    for mu in (0.0, 0.5, 0.98, 1.0):
        base = temporal_momentum(x, mu, 2)
        assert torch.equal(momentum_weights(8, [0.3] + [mu] * 7), momentum_weights(8, mu))
        assert torch.equal(temporal_momentum(x, [0.1] + [mu] * 7, 2), base)
        assert torch.equal(temporal_momentum(x, FrameSchedule((mu,)), 2), base)
    assert frame_momenta(FrameSchedule((0.2, 0.5, 0.9)), 4) == [0.2, 0.5, 0.9, 0.9]
    assert frame_momenta(FrameSchedule((0.5, 0.9)), 2) == 0.9          # only mu_2 is used: a scalar
    assert frame_momenta(FrameSchedule((0.0, 1.0), ramp=True), 5) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_per_frame_errors():
    with pytest.raises(ValueError, match="one value per frame"):
        temporal_momentum(torch.randn(8, 2), [0.5, 0.5, 0.9])
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        temporal_momentum(torch.randn(3, 2), [0.5, 0.5, 1.2])
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        TemporalMomentumPatch([0.5, -0.1])


def test_patch_resolves_schedule_per_call_and_per_chunk():
    """The patch resolves the schedule to the frames of each CFG chunk at call time (repeat-last)."""
    p = TemporalMomentumPatch(FrameSchedule((0.0, 0.2, 0.9)))
    n = torch.randn(10, 5, 4)                                       # 2 chunks x 5 frames
    _, k, _ = p(n, n, n, {"cond_or_uncond": [1, 0]})
    assert torch.allclose(k, temporal_momentum_recursive(n, [0.0, 0.2, 0.9, 0.9, 0.9], 2), atol=1e-6)
    n3 = torch.randn(3, 5, 4)                                       # another call, 1 chunk x 3 frames
    _, k, _ = p(n3, n3, n3, {"cond_or_uncond": [0]})
    assert torch.allclose(k, explicit_recursion(n3, [0.0, 0.2, 0.9]), atol=1e-6)


def test_context_window_follows_global_frame_indices():
    """Under AnimateDiff-Evolved context windows mu_i follows the frames' global indices (sub_idxs,
    resolved to full_length); the window's first frame still keeps its own K."""
    ramp = FrameSchedule((0.0, 0.75), ramp=True)                    # 16 frames: mu_g = 0.05 * g (0-based g)
    mus = ramp.resolve(16)
    video = torch.randn(2, 16, 5, 4, generator=torch.Generator().manual_seed(2))
    for window in ([6, 7, 8, 9], [14, 15, 0, 1]):
        n = video[:, window].reshape(8, 5, 4)
        ad = {"cond_or_uncond": [1, 0], "ad_params": {"full_length": 16, "context_length": 4, "sub_idxs": window}}
        _, k, _ = TemporalMomentumPatch(ramp)(n, n, n, ad)
        expected = torch.stack([explicit_recursion(video[c, window], [mus[g] for g in window]) for c in range(2)])
        assert torch.allclose(k.reshape(2, 4, 5, 4), expected, atol=1e-6)
        assert torch.equal(k.reshape(2, 4, 5, 4)[:, 0], video[:, window[0]])
    # not windowed (ADE passes sub_idxs None): frames 1..F of the call
    n = video[0, :4]
    _, k, _ = TemporalMomentumPatch(ramp)(n, n, n, {"cond_or_uncond": [0], "ad_params": {"sub_idxs": None}})
    assert torch.allclose(k, explicit_recursion(n, ramp.resolve(4)), atol=1e-6)


# --------------------------------------------------------------------------- memory (issue 14, edge 7)

class _Allocations(TorchDispatchMode):
    """Every new tensor storage an op creates (views and in-place results excluded): ``(dtype, numel)``."""

    def __init__(self):
        super().__init__()
        self.new = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.utils._pytree import tree_leaves
        out = func(*args, **(kwargs or {}))
        seen = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
                self.new.append((t.dtype, t.untyped_storage().nbytes() // t.element_size()))
        return out


@pytest.mark.parametrize("tokens", [None, (6, 70)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_float32_averaging_holds_at_most_one_frame_of_k_and_v(dtype, tokens):
    """fp16/bf16 K [2 chunks x 8 frames, heads, tokens, dim] (Flux layout): beyond the result, the
    averaging holds at most two frames in float32 (one frame's K and V), never a float32 copy of all
    frames (which would be 16 frames: 8x the bound), with or without a token range; still Eq. 2."""
    x = torch.randn(16, 2, 70, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    frame = x[0].narrow(1, *(0, 70) if tokens is None else (tokens[0], tokens[1] - tokens[0])).numel()
    kw = {} if tokens is None else {"tokens": tokens, "token_dim": 2}
    with _Allocations() as allocs:
        out = temporal_momentum(x, 0.9, 2, **kw)
    f32 = [n for d, n in allocs.new if d == torch.float32]
    assert f32 and max(f32) <= frame
    assert [n for d, n in allocs.new if d == dtype] == [x.numel()]        # the result, once
    peak, out2 = allocator_peak(lambda: temporal_momentum(x, 0.9, 2, **kw))
    assert peak - x.numel() * x.element_size() <= 2 * frame * 4
    sl = slice(None) if tokens is None else slice(*tokens)
    ref = temporal_momentum_recursive(x.double()[:, :, sl], 0.9, 2)
    assert torch.equal(out, out2) and (out[:, :, sl].double() - ref).abs().max() < 0.02


def test_token_range_only_those_tokens_change():
    """``tokens`` on ``token_dim``: the tokens outside come back bit for bit (text of joint attention),
    the tokens inside equal Eq. 2 of those tokens alone; ``(a, a)`` returns ``x`` itself."""
    x = torch.randn(12, 30, 4, dtype=torch.float64)
    out = temporal_momentum(x, 0.7, 2, tokens=(5, 21), token_dim=1)
    assert torch.equal(out[:, :5], x[:, :5]) and torch.equal(out[:, 21:], x[:, 21:])
    assert torch.allclose(out[:, 5:21], temporal_momentum_recursive(x[:, 5:21], 0.7, 2))
    assert torch.equal(temporal_momentum(x, 1.0, 2, tokens=slice(5, 21))[:, 5:21],
                       x[:, 5:21].reshape(2, 6, 16, 4)[:, :1].expand(2, 6, 16, 4).reshape(12, 16, 4))
    assert temporal_momentum(x, 0.7, 2, tokens=(4, 4)) is x
    with pytest.raises(ValueError, match="token_dim"):
        temporal_momentum(x, 0.7, 2, tokens=(0, 3), token_dim=3)


def test_override_call_info_image_span_and_call_count():
    """With an AttentionCallInfo under its info_key, the override averages only the image span of
    self/joint attention (image_only), counts every call (cross-attention too), and averages every
    token with image_only=False."""
    from training_free_video.attention.temporal_momentum import AttentionCallInfo
    q = torch.randn(8, 2, 10, 4)
    k, v = torch.randn(8, 2, 10, 4), torch.randn(8, 2, 10, 4)
    info = AttentionCallInfo(lambda n: (3, n - 1))
    to = {"cond_or_uncond": [1, 0], "ov": info}
    TemporalMomentumAttentionOverride(0.8, info_key="ov")(_attend, q, k, v, 2, skip_reshape=True, transformer_options=to)
    k2, v2 = _attend.seen[1:3]
    assert info.calls == 1
    for t, t2 in ((k, k2), (v, v2)):
        assert torch.equal(t2[:, :, :3], t[:, :, :3]) and torch.equal(t2[:, :, 9:], t[:, :, 9:])
        assert torch.allclose(t2[:, :, 3:9], temporal_momentum_recursive(t[:, :, 3:9], 0.8, 2), atol=1e-6)
    ctx = torch.randn(8, 2, 7, 4)                                          # cross-attention: counted, untouched
    TemporalMomentumAttentionOverride(0.8, info_key="ov")(_attend, q, ctx, ctx, 2, skip_reshape=True,
                                                          transformer_options=to)
    assert info.calls == 2 and _attend.seen[1] is ctx
    TemporalMomentumAttentionOverride(0.8, image_only=False, info_key="ov")(_attend, q, k, v, 2, skip_reshape=True,
                                                                           transformer_options=to)
    assert torch.allclose(_attend.seen[1], temporal_momentum_recursive(k, 0.8, 2), atol=1e-6)


def test_token_grid_averages_the_first_width_of_each_row_only():
    """A grid ``(start, stop, period, width)`` (HiDream E1: rows of [target, reference] tokens): the
    first ``width`` tokens of each ``period``-token row are averaged (Eq. 2 of those alone), every other
    token comes back bit for bit; width 0 returns ``x`` itself; a period not dividing the span is an error."""
    x = torch.randn(12, 2, 3 * 8 + 5, 4, dtype=torch.float64)               # [B, heads, 3 rows of 8 + 5 text, d]
    out = temporal_momentum(x, 0.7, 2, tokens=(0, 24, 8, 5), token_dim=2)
    own = (torch.arange(3) * 8).unsqueeze(1).add(torch.arange(5)).flatten()
    rest = torch.tensor([i for i in range(29) if i not in set(own.tolist())])
    assert torch.equal(out[:, :, rest], x[:, :, rest])
    assert torch.allclose(out[:, :, own], temporal_momentum_recursive(x[:, :, own], 0.7, 2))
    assert temporal_momentum(x, 0.7, 2, tokens=(0, 24, 8, 0), token_dim=2) is x
    with pytest.raises(ValueError, match="token grid"):
        temporal_momentum(x, 0.7, 2, tokens=(0, 24, 7, 3), token_dim=2)


def test_override_passes_calls_of_another_batch_than_the_frames():
    """Call info ``batch``: a self-attention call whose batch is not the frames' (Krea 2's text fusion
    over batch x text tokens samples) passes unchanged, counted; the frames' batch is averaged."""
    from training_free_video.attention.temporal_momentum import AttentionCallInfo
    info = AttentionCallInfo(batch=8)
    to = {"cond_or_uncond": [1, 0], "ov": info}
    ov = TemporalMomentumAttentionOverride(0.8, image_only=False, info_key="ov")
    t = torch.randn(24, 2, 3, 4)                                           # 8 samples x 3 text tokens
    ov(_attend, t, t, t, 2, skip_reshape=True, transformer_options=to)
    assert _attend.seen[1] is t and info.calls == 1
    k = torch.randn(8, 2, 5, 4)
    ov(_attend, k, k, k, 2, skip_reshape=True, transformer_options=to)
    assert torch.allclose(_attend.seen[1], temporal_momentum_recursive(k, 0.8, 2), atol=1e-6) and info.calls == 2

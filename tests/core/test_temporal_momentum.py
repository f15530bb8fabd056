"""Temporal Momentum Attention, ZS^2 Eq. 2 (docs/algorithms.md section 3.2): pure-torch checks of the averaging.
Its ComfyUI adapters (the UNet attn1 patch, the DiT attention override) are tested in
tests/comfyui/test_zs2_tma_adapters.py."""
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from training_free_video.attention.temporal_momentum import (
    averaging_dtype, momentum_spec, momentum_weights, temporal_momentum, temporal_momentum_recursive)

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
        momentum_spec(-0.1)


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
        momentum_spec([0.5, -0.1])


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



"""FreeInit on several streams (audio+video latents) and with noise masks: the pure-torch parts
(``samplers.freeinit.free_init_streams``, ``mix_along_time``, ``keep_given``)."""
import pytest
import torch

from training_free_video.samplers import freeinit as fi
from training_free_video.samplers.gaussian_mixture import FlowModelSampling

SHAPES = [(1, 4, 5, 4, 4), (1, 3, 2, 12)]   # video [B, C, T, H, W], audio [B, C, 2, T_a] (time last)


def _pack(streams):
    return torch.cat([s.reshape(s.shape[0], 1, -1) for s in streams], -1)


def _unpack(x):
    out, i = [], 0
    for sh in SHAPES:
        n = int(torch.tensor(sh[1:]).prod())
        out.append(x[:, :, i:i + n].reshape(sh))
        i += n
    return out


def test_keep_given_keeps_the_noise_where_the_mask_is_zero():
    g = torch.Generator().manual_seed(0)
    start, noise = torch.randn(1, 2, 3, 2, 2, generator=g), torch.randn(1, 2, 3, 2, 2, generator=g)
    mask = torch.ones(1, 1, 3, 1, 1)
    mask[:, :, 0] = 0
    out = fi.keep_given(start, noise, mask)
    assert torch.equal(out[:, :, 0], noise[:, :, 0]) and torch.allclose(out[:, :, 1:], start[:, :, 1:], atol=1e-6)
    assert fi.keep_given(start, noise, None) is start


def test_mix_along_time_takes_low_frequencies_from_low_and_high_from_high():
    t = 16
    low = torch.ones(1, 3, 2, t)                                      # DC only
    high = torch.tensor([(-1.0) ** k for k in range(t)]).expand(1, 3, 2, t)   # Nyquist only
    s = fi.Settings(iterations=2, filter_type="butterworth", d_s=0.25, d_t=0.25, order=4)
    out = fi.mix_along_time(low, high, -1, s)
    spec = torch.fft.fft(out, dim=-1)
    assert torch.allclose(spec[..., 0].real, torch.full_like(spec[..., 0].real, t), atol=1e-4)   # DC of low kept
    assert spec[..., t // 2].abs().max() > 0.99 * t                                              # Nyquist of high
    # the other axes are not mixed: the time axis may sit anywhere
    out2 = fi.mix_along_time(low.movedim(-1, 2), high.movedim(-1, 2), 2, s)
    assert torch.allclose(out2.movedim(2, -1), out, atol=1e-6)


@pytest.mark.parametrize("audio", fi.AUDIO_TREATMENTS)
def test_free_init_streams_video_mixed_audio_per_treatment(audio):
    g = torch.Generator().manual_seed(1)
    noise = [torch.randn(sh, generator=g) for sh in SHAPES]
    ms = FlowModelSampling(3.0)
    starts = {}

    def sample(x, p):   # a stand-in sampler: returns a fixed "clean" result per pass
        return _pack([torch.full(sh, 0.5 + p) for sh in SHAPES])

    mask = [torch.ones(1, 1, 5, 1, 1), None]
    mask[0][:, :, 0] = 0
    fi.free_init_streams(sample, noise, ms, 1.0, fi.Settings(iterations=2), _pack, _unpack, [-1], seed=3,
                         masks=mask, audio_treatment=audio, on_reinit=lambda p, s: starts.setdefault(p, s))
    v, a = starts[1]
    assert v.shape == SHAPES[0] and a.shape == SHAPES[1]
    assert torch.equal(v[:, :, 0], noise[0][:, :, 0]) and not torch.allclose(v[:, :, 1:], noise[0][:, :, 1:])
    if audio == "keep initial noise":
        assert torch.equal(a, noise[1])
    else:
        assert not torch.allclose(a, noise[1])
    with pytest.raises(ValueError, match="^audio must be one of"):
        fi.free_init_streams(sample, noise, ms, 1.0, fi.Settings(iterations=2), _pack, _unpack, [-1],
                             audio_treatment="both")


def test_free_init_streams_filters_each_video_of_a_batch_on_its_own():
    """A batch of two one-frame videos (T = 1, an audio+video model sampling stills) is two independent
    samples: video 0 must come out as it does in a batch of one. Before the streams loop passed
    ``batch_frames`` through, the 3-D low-pass ran across the batch (as for an image model's frames)."""
    shapes = [(2, 4, 1, 4, 4), (2, 3, 2, 12)]

    def pack(streams):
        return torch.cat([s.reshape(s.shape[0], 1, -1) for s in streams], -1)

    def unpack_for(batch):
        def unpack(x):
            out, i = [], 0
            for sh in shapes:
                sh = (batch,) + sh[1:]
                n = int(torch.tensor(sh[1:]).prod())
                out.append(x[:, :, i:i + n].reshape(sh))
                i += n
            return out
        return unpack

    def sample(x, p):   # a per-sample stand-in sampler: each batch entry's result depends on it alone
        return torch.tanh(2.0 * x) + 0.3 * p

    g = torch.Generator().manual_seed(5)
    noise = [torch.randn(sh, generator=g) for sh in shapes]
    ms = FlowModelSampling(3.0)
    settings = fi.Settings(iterations=3)
    both = fi.free_init_streams(sample, noise, ms, 1.0, settings, pack, unpack_for(2), [-1], seed=7)
    one = fi.free_init_streams(sample, [n[:1] for n in noise], ms, 1.0, settings, pack, unpack_for(1), [-1], seed=7)
    assert torch.allclose(both[:1], one, atol=1e-5)
    # a model that does attend across its batch still gets the low-pass across it
    coupled = fi.free_init_streams(sample, noise, ms, 1.0, settings, pack, unpack_for(2), [-1], seed=7,
                                   batch_frames=True)
    assert (coupled[:1] - one).abs().max() > 1e-2

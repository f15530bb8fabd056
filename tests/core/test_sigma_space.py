"""ComfyUI's sigma space (samplers/sigma_space.py) on the analytic world: DDIM step, DDIM
inversion, unit noise <-> x, the grid step below a sigma (docs/algorithms.md section 0 and section 1.1)."""
import math

import pytest
import torch

from training_free_video.samplers.gaussian_mixture import (EpsModelSampling, FlowModelSampling,
                                                           GaussianMixtureWorld, sd_discrete_sigmas)
from training_free_video.samplers.sigma_space import (ddim_step, eps_from_x0, grid_sigma_below, one_minus_alphabar,
                                                      scaling_coefficients, unit_to_x, x_to_unit)
from training_free_video.samplers.smoothinit import grid_schedule

SPACES = {"eps": EpsModelSampling, "flow": lambda: FlowModelSampling(shift=3.0)}


@pytest.mark.parametrize("space", SPACES)
def test_ddim_step_with_the_true_x0_moves_along_the_noise_direction(space):
    ms = SPACES[space]()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(5, 7, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 7, generator=g, dtype=torch.float64)
    s, s_next = 0.8, 0.3
    x = ms.noise_scaling(torch.tensor(s, dtype=torch.float64), eps, x0)
    expect = ms.noise_scaling(torch.tensor(s_next, dtype=torch.float64), eps, x0)
    torch.testing.assert_close(ddim_step(x, x0, s, s_next), expect, rtol=0, atol=1e-12)
    # the same formula upward is exact inversion given the true x0
    torch.testing.assert_close(ddim_step(expect, x0, s_next, s), x, rtol=0, atol=1e-12)


def test_ddim_step_rejects_non_positive_sigma():
    x = torch.zeros(1, 3)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        ddim_step(x, x, 0.0, 0.5)


@pytest.mark.parametrize("space,max_denoise,expect", [
    ("eps", False, lambda s: (1.0, s)),
    ("eps", True, lambda s: (1.0, math.sqrt(1 + s * s))),
    ("flow", False, lambda s: (1.0 - s, s)),
    ("flow", True, lambda s: (1.0 - s, s)),
])
def test_scaling_coefficients(space, max_denoise, expect):
    ms = SPACES[space]()
    s = 0.7
    a, b = scaling_coefficients(ms, s, torch.zeros(1), max_denoise)
    ea, eb = expect(s)
    assert float(a) == pytest.approx(ea, abs=1e-6) and float(b) == pytest.approx(eb, abs=1e-6)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("max_denoise", [False, True])
def test_unit_to_x_round_trip_with_and_without_latent(space, max_denoise):
    ms = SPACES[space]()
    g = torch.Generator().manual_seed(1)
    n = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    lat = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    s = float(ms.sigma_max) if max_denoise else 0.6
    for latent in (None, lat):
        x = unit_to_x(ms, n, s, latent, max_denoise)
        ref = ms.noise_scaling(torch.tensor(s), n, torch.zeros_like(n) if latent is None else latent, max_denoise)
        torch.testing.assert_close(x, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(x_to_unit(ms, x, s, latent, max_denoise), n, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("space", SPACES)
def test_eps_from_x0_and_one_minus_alphabar(space):
    ms = SPACES[space]()
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(2, 6, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 6, generator=g, dtype=torch.float64)
    s = 0.4
    x = ms.noise_scaling(torch.tensor(s), eps, x0)
    torch.testing.assert_close(eps_from_x0(ms, x, x0, s), eps, rtol=1e-6, atol=1e-6)
    a, b = (1.0, s) if space == "eps" else (1.0 - s, s)
    assert float(one_minus_alphabar(ms, s)) == pytest.approx(b * b / (a * a + b * b), rel=1e-6)


def test_grid_sigma_below_is_the_released_codes_999_to_979():
    table = sd_discrete_sigmas()
    assert float(grid_sigma_below(table, table[-1], 50)) == pytest.approx(float(table[979]), rel=1e-5)
    assert float(grid_sigma_below(table, table[-1], 20)) == pytest.approx(float(table[949]), rel=1e-5)
    flow = FlowModelSampling(shift=8.0).sigmas
    assert float(grid_sigma_below(flow, 1.0, 50)) == pytest.approx(float(flow[979]), rel=1e-5)
    # in between table entries: strictly below and monotone
    mid = 0.5 * float(table[500] + table[501])
    below = float(grid_sigma_below(table, mid, 50))
    assert float(table[480]) < below < float(table[481])


def test_grid_sigma_below_errors():
    with pytest.raises(ValueError, match="grid_steps must be >= 2"):
        grid_sigma_below(sd_discrete_sigmas(), 14.6, 1)
    with pytest.raises(ValueError, match="at least 2 entries"):
        grid_sigma_below(torch.tensor([1.0]), 1.0, 50)


def test_grid_schedule_matches_comfyui_simple_layout():
    table = sd_discrete_sigmas()
    sig = grid_schedule(table, 10)
    assert sig.shape == (11,) and float(sig[-1]) == 0.0
    assert float(sig[0]) == pytest.approx(float(table[-1]))
    assert float(sig[1]) == pytest.approx(float(table[899]))
    assert bool((sig[:-1][1:] < sig[:-1][:-1]).all())


def _inversion_error(space: str, steps: int, cfg: float) -> float:
    ms = SPACES[space]()
    world = GaussianMixtureWorld.default(dim=8, classes=4, spread=1.0, std=0.5)
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(256, 8, generator=g, dtype=torch.float64)
    d = world.denoiser(ms, torch.arange(256) % 4)
    sig = grid_schedule(ms.sigmas, steps, final_zero=False)
    x = unit_to_x(ms, eps, sig[0])
    x_start = x.clone()
    for i in range(steps - 1):                      # DDIM down to the last non-zero sigma
        x = ddim_step(x, d(x, sig[i], cfg), sig[i], sig[i + 1])
    for i in range(steps - 1, 0, -1):               # DDIM inversion back up
        x = ddim_step(x, d(x, sig[i], cfg), sig[i], sig[i - 1])
    return float((x - x_start).norm() / x_start.norm())


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_ddim_inversion_returns_to_start_with_error_shrinking_in_steps(space, cfg):
    errs = [_inversion_error(space, n, cfg) for n in (10, 25, 50, 100, 200)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.04 and errs[-1] < errs[0] / 4, errs

"""ComfyUI bridge: the order of SAMPLER_SAMPLE wrappers (which patch sees the sampler's noise first).

Part of the one package that touches ComfyUI internals (see ``__init__``).

ComfyUI runs the SAMPLER_SAMPLE wrappers of a MODEL in the order they were added to it (the first
added is the outermost and sees the noise first), so without care the result of stacked patches
would depend on the order the user applied them in. The pack's wrappers carry a rank and are kept
in front of every other SAMPLER_SAMPLE wrapper (ComfyUI core context windows' FreeNoise,
AnimateDiff-Evolved's, other packs'), lowest rank outermost, whatever the order of application:

* rank 0, chunking (ZS^2 Long Video): splits the full-length noise into chunks;
* rank 1, noise replacement (SmoothInit (KSampler)): replaces the full-length (or chunk) noise;
* then everything else in the order it was added, e.g. core FreeNoise (0.33.0 context windows,
  on by default for Wan/LTXV), which reshuffles the noise the pack's patches made -- as it
  reshuffles RandomNoise -- so each pack method gives the same noise as its NOISE node, and
  FreeNoise stays in effect.

OUTER_SAMPLE wrappers (Dependency Noise (KSampler), FreeInit) always run before every
SAMPLER_SAMPLE wrapper; FreeInit's multi-pass SAMPLER runs below all of them.
"""
from __future__ import annotations

from typing import Callable

from .models import WrappersMP

_RANK_ATTR = "tfv_sampler_sample_rank"
RANK_CHUNKS = 0
RANK_NOISE = 1


def ranked(fn: Callable, rank: int) -> Callable:
    """Mark a SAMPLER_SAMPLE wrapper function of the pack with its rank (lower = outer)."""
    setattr(fn, _RANK_ATTR, int(rank))
    return fn


def _rank(wrappers: list) -> float:
    ranks = [getattr(w, _RANK_ATTR) for w in wrappers if hasattr(w, _RANK_ATTR)]
    return min(ranks) if ranks else float("inf")


def place_sampler_sample_wrappers(m) -> None:
    """Reorder the SAMPLER_SAMPLE wrappers of ``m`` (a clone the caller owns: ``ModelPatcher.clone``
    copies the wrapper dicts) so the pack's ranked wrappers come first by rank, then every other
    wrapper in the order it was added (Python's sort is stable)."""
    table = getattr(m, "wrappers", {}).get(WrappersMP.SAMPLER_SAMPLE)
    if not table:
        return
    order = sorted(table.keys(), key=lambda k: _rank(table[k]))
    m.wrappers[WrappersMP.SAMPLER_SAMPLE] = {k: table[k] for k in order}


def sampler_sample_order(model) -> list[str]:
    """The keys of ``model``'s SAMPLER_SAMPLE wrappers, outermost first (for tests and messages)."""
    return list(getattr(model, "wrappers", {}).get(WrappersMP.SAMPLER_SAMPLE, {}).keys())

"""ComfyUI bridge: chunked sampling (ZS^2 long videos).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from .calls import _OWN_LOOP
from .models import WrappersMP
from .order import RANK_CHUNKS, place_sampler_sample_wrappers, ranked


def own_loop_active() -> bool:
    """True while :func:`run_in_sampling` runs one of the pack's own loops (NI-VSDS, NOISE nodes)."""
    return _OWN_LOOP.get()


def add_sampler_wrappers(model, key: str, sampler_sample: Callable | None = None,
                         predict_noise: Callable | None = None, outermost: bool = False):
    """Clone ``model`` with a SAMPLER_SAMPLE wrapper ``sampler_sample(executor, guider, sigmas,
    extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)`` (every sampler node ends
    there, model loaded and conds processed) and/or a PREDICT_NOISE wrapper ``predict_noise(executor,
    x, timestep, model_options, seed)`` (every CFG model call; ``model_options`` is the sampler's
    ``extra_args["model_options"]``). ``outermost``: the SAMPLER_SAMPLE wrapper runs before every
    other SAMPLER_SAMPLE wrapper, also ones added later (rank 0 of :mod:`.order`), so e.g. chunking
    sees the noise before SmoothInit (KSampler) and core FreeNoise do, whichever was applied first.
    The input MODEL is not mutated."""
    m = model.clone()
    if sampler_sample is not None:
        if outermost:
            sampler_sample = ranked(sampler_sample, RANK_CHUNKS)
        m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, key, sampler_sample)
        place_sampler_sample_wrappers(m)   # the clone owns its wrapper dicts (ModelPatcher.clone copies them)
    if predict_noise is not None:
        m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, key, predict_noise)
    return m


def with_transformer_option(extra_args: dict, key: str, value) -> dict:
    """A copy of a sampler's ``extra_args`` whose ``model_options["transformer_options"][key]`` is
    ``value`` (every model call of a sampler run with it sees the value; the original is untouched)."""
    mo = dict(extra_args.get("model_options", {}))
    to = dict(mo.get("transformer_options", {}))
    to[key] = value
    mo["transformer_options"] = to
    ea = dict(extra_args)
    ea["model_options"] = mo
    return ea


def transformer_option(model_options: dict, key: str, default=None):
    """``model_options["transformer_options"][key]`` (e.g. in a PREDICT_NOISE wrapper), else ``default``."""
    return model_options.get("transformer_options", {}).get(key, default)


def _controls(cond: dict):
    c = cond.get("control")
    seen = set()
    while c is not None and id(c) not in seen:
        seen.add(id(c))
        yield c
        c = getattr(c, "previous_controlnet", None)

@contextlib.contextmanager
def conds_frame_slice(guider, frames: int, start: int, end: int):
    """Inside ``CFGGuider.sample``: narrow every per-frame conditioning of ``guider`` to the frames
    ``start .. end - 1`` of an ``frames``-frame video (frames as the batch) for the duration of the
    block, then restore it.

    Per-frame means a batch of exactly ``frames``: model conds (e.g. InstructPix2Pix / inpainting
    ``concat`` latents, batched text conds), ControlNet / T2I-Adapter hint images (one control
    image per frame), and tensors in the cond itself, above all ``cond["mask"]`` (ConditioningSetMask
    with one mask per frame, ``[frames, h, w]`` after ComfyUI resized it to the latent; sliced as
    AnimateDiff-Evolved slices a cond's tensors for its context windows). Anything with batch 1 is
    shared by all frames and left alone. Without this, ComfyUI would repeat/truncate them to the
    chunk's batch, i.e. give every chunk the first frames' conditioning."""
    undo = []
    try:
        for conds in getattr(guider, "conds", {}).values():
            for cond in conds or []:
                for name, t in list(cond.items()):
                    if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == frames:
                        undo.append((cond.__setitem__, (name, t)))
                        cond[name] = t[start:end]
                mc = cond.get("model_conds", {})
                for name, c in list(mc.items()):
                    t = getattr(c, "cond", None)
                    if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == frames and hasattr(c, "_copy_with"):
                        undo.append((mc.__setitem__, (name, c)))
                        mc[name] = c._copy_with(t[start:end])
                for ctrl in _controls(cond):
                    hint = getattr(ctrl, "cond_hint_original", None)
                    if isinstance(hint, torch.Tensor) and hint.ndim >= 1 and hint.shape[0] == frames:
                        undo.append((setattr, (ctrl, "cond_hint_original", hint)))
                        ctrl.cond_hint_original = hint[start:end]
                        ctrl.cond_hint = None              # rebuilt from the sliced hint at the next call
                        if hasattr(ctrl, "control_input"):
                            ctrl.control_input = None      # T2I-Adapter's cached features
        yield
    finally:
        for fn, args in reversed(undo):
            fn(*args)
            if fn is setattr:
                args[0].cond_hint = None
                if hasattr(args[0], "control_input"):
                    args[0].control_input = None

"""ComfyUI bridge: memory (SmoothInit).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

import comfy.model_management
import comfy.samplers


def soft_empty_cache() -> None:
    """Free cached device memory (ComfyUI's ``soft_empty_cache``), e.g. after an out-of-memory."""
    comfy.model_management.soft_empty_cache()


def sampler_cfg(guider) -> float:
    """The CFG scale the sampler's guider applies: ``guider.cfg`` for a CFGGuider with a negative
    (KSampler's cfg), 1.0 for guiders with their own rule (BasicGuider, DualCFGGuider), whose model
    call does not depend on ``guider.cfg``."""
    return float(guider.cfg) if guider_applies_cfg(guider) else 1.0


def guider_applies_cfg(guider) -> bool:
    """True when ``guider.cfg`` really is the CFG scale of its model calls: a plain CFGGuider (or a
    subclass that keeps its ``predict_noise``) with a negative conditioning. False for BasicGuider
    (no negative: Flux-style), DualCFGGuider, PerpNeg and other guiders with their own rule."""
    pn = getattr(type(guider), "predict_noise", None)
    return (isinstance(guider, comfy.samplers.CFGGuider) and pn is comfy.samplers.CFGGuider.predict_noise
            and "negative" in getattr(guider, "original_conds", {}))

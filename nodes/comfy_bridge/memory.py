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


def guider_rule(guider) -> str:
    """How the sampler's guider combines its conds, as a predicate for error messages ("the sampler's
    guider (X) ..."). Read from the guider's conds and attributes, never its class name:

    * no ``negative`` cond (BasicGuider, Flux-style): "has no negative prompt (no CFG)";
    * a plain CFGGuider (:func:`guider_applies_cfg`): "applies CFG <cfg> to its positive and negative prompts";
    * a negative and its own ``predict_noise`` (DualCFGGuider: cfg1/cfg2; PerpNegGuider: cfg/neg_scale;
      any other): "has a negative prompt but combines its conds (<names>) with its own rule (<scales>), ...".
    """
    conds = sorted(getattr(guider, "original_conds", {}) or {})
    if "negative" not in conds:
        return "has no negative prompt (no CFG)"
    if guider_applies_cfg(guider):
        return f"applies CFG {float(guider.cfg):g} to its positive and negative prompts"
    if hasattr(guider, "cfg1") and hasattr(guider, "cfg2"):  # ComfyUI's DualCFGGuider
        style = "nested" if getattr(guider, "nested", False) else "regular"
        detail = f"cfg_conds {float(guider.cfg1):g}, cfg_cond2_negative {float(guider.cfg2):g}, {style}"
    elif hasattr(guider, "neg_scale"):  # ComfyUI's PerpNegGuider
        detail = (f"cfg {float(guider.cfg):g}, neg_scale {float(guider.neg_scale):g}: the negative is projected "
                  f"perpendicular to the positive")
    else:
        detail = "its own predict_noise"
    return (f"has a negative prompt but combines its conds ({', '.join(conds)}) with its own rule ({detail}), not "
            f"the plain CFG of one positive and one negative prompt that Forward-Inversion's DDIM step scales")


def guider_applies_cfg(guider) -> bool:
    """True when ``guider.cfg`` really is the CFG scale of its model calls: a plain CFGGuider (or a
    subclass that keeps its ``predict_noise``) with a negative conditioning. False for BasicGuider
    (no negative: Flux-style), DualCFGGuider, PerpNeg and other guiders with their own rule."""
    pn = getattr(type(guider), "predict_noise", None)
    return (isinstance(guider, comfy.samplers.CFGGuider) and pn is comfy.samplers.CFGGuider.predict_noise
            and "negative" in getattr(guider, "original_conds", {}))

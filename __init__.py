"""Training-free video diffusion for ComfyUI.

SmoothInit / Fast-SmoothInit / Forward-Inversion noise initialisers, I4VGen (NI-VSDS) and ZS^2
(Dependency Noise, Temporal Momentum Attention). ComfyUI loads this folder from ``custom_nodes/``
and reads ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS``.

Outside ComfyUI (no ``comfy`` modules importable, e.g. the pure-torch tests) the pack imports
with empty mappings; the pure-torch core lives in ``samplers/`` and ``attention/``.
"""
import importlib.util
import logging

__version__ = "0.4.1"


def _comfy_present() -> bool:
    try:  # ComfyUI's own `comfy` package (never the unrelated PyPI project of the same name)
        return importlib.util.find_spec("comfy.model_patcher") is not None
    except (ImportError, ValueError):
        return False


if _comfy_present():
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    logging.getLogger(__name__).info("training_free_video: ComfyUI not importable; no nodes registered")
    NODE_CLASS_MAPPINGS = {}
    NODE_DISPLAY_NAME_MAPPINGS = {}

WEB_DIRECTORY = None
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

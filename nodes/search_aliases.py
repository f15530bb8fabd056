"""Search aliases and the category tree of every node of the pack, in one place.

``SEARCH_ALIASES`` is the V1 node attribute ComfyUI serves as ``search_aliases`` in ``GET /object_info``
(``server.py`` node_info, ComfyUI 0.33.0; V3 nodes: ``Schema.search_aliases``); the node-search box of
frontend 1.49 matches it like the node's name and display name (Fuse keys ``name``, ``display_name``,
``search_aliases``). Older servers (0.3.64) do not serve the attribute, so it is ignored there.

Every node's category is ``training_free_video/<method>`` (``CATEGORY_ROOT`` + one of ``METHODS``):
the node library and the search filter show one folder for the pack with one sub-folder per method.
"""
from __future__ import annotations

CATEGORY_ROOT = "training_free_video"
METHODS = ("SmoothInit", "I4VGen", "ZS2", "FreeInit")

# Terms users type: method and paper names, what the node does in plain words, the task.
_VIDEO = ["text2video", "text to video", "t2v", "training-free video", "zero-shot video"]
_NOISE_INIT = ["noise init", "noise initialization", "initial noise", "optimize noise"]
_SMOOTHINIT = ["smoothinit", "smooth init", "smooth noise", "temporal consistency", "consistency",
               "flicker"] + _NOISE_INIT
_ZS2 = ["zs2", "zs^2", "zero-shot", "image model to video"] + _VIDEO
_I4VGEN = ["i4vgen", "image to video", "animate image", "img2vid", "i2v", "anchor image"]
_FREEINIT = ["freeinit", "free init", "noise reinitialization", "low frequency", "frequency filter",
             "temporal consistency", "consistency"] + _NOISE_INIT

SEARCH_ALIASES: dict[str, list[str]] = {
    # ZS^2
    "DependencyNoise": _ZS2 + ["dependency noise", "correlated noise", "video noise", "pyoco", "mixed noise",
                               "progressive noise", "noise init", "consistency"],
    "DependencyNoiseModelPatch": _ZS2 + ["dependency noise", "correlated noise", "ksampler noise", "pyoco",
                                         "noise init", "consistency"],
    "TemporalMomentumAttention": _ZS2 + ["tma", "momentum attention", "temporal attention", "cross-frame attention",
                                         "consistency", "flicker"],
    "ZS2LongVideo": _ZS2 + ["long video", "chunks", "autoregressive", "64 frames", "sliding window"],
    # SmoothInit
    "ForwardInversionNoise": _SMOOTHINIT + ["forward inversion", "ddim inversion", "inversion noise"],
    "SmoothInitNoise": _SMOOTHINIT + ["smoothinit noise", "smoothinit-30"] + _VIDEO,
    "FastSmoothInitNoise": _SMOOTHINIT + ["fast smoothinit", "fast-smoothinit", "momentum"] + _VIDEO,
    "SmoothInitModelPatch": _SMOOTHINIT + ["smoothinit ksampler", "model patch"] + _VIDEO,
    "TFVSaveNoise": ["save noise", "export noise", "noise to file", "safetensors noise", "smoothinit", "cache noise"],
    "TFVLoadNoise": ["load noise", "import noise", "noise from file", "safetensors noise", "smoothinit", "reuse noise"],
    # I4VGen
    "I4VGenAnchorSelect": _I4VGEN + ["anchor select", "best image", "pick best", "rank images", "score"],
    "I4VGenStaticVideoFromLatent": _I4VGEN + ["static video", "still video", "repeat frames", "hold frame"],
    "I4VGenStaticVideoFromImage": _I4VGEN + ["static video", "still video", "image to static video", "real image"],
    "NIVSDSAnimate": _I4VGEN + ["ni-vsds", "nivsds", "vsds", "score distillation", "animate"] + _VIDEO,
    # FreeInit
    "TFVFreeInitModelPatch": _FREEINIT + ["freeinit ksampler", "model patch"] + _VIDEO,
    "TFVFreeInitSampler": _FREEINIT + ["freeinit sampler", "sampler wrapper", "custom sampler"] + _VIDEO,
    "TFVFreeInitTwoExperts": _FREEINIT + ["wan 2.2", "wan22", "two experts", "high noise", "low noise",
                                          "ksampleradvanced"] + _VIDEO,
}


def apply(node_class_mappings: dict) -> None:
    """Set ``SEARCH_ALIASES`` (deduplicated, in order) on every node class listed here.

    A node missing from ``SEARCH_ALIASES`` keeps none (the pack still loads);
    tests/comfyui/test_packaging.py fails on it."""
    for name, cls in node_class_mappings.items():
        if name in SEARCH_ALIASES:
            cls.SEARCH_ALIASES = list(dict.fromkeys(SEARCH_ALIASES[name]))

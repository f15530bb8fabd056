"""One declaration per node: :class:`Spec`, the :func:`node` class decorator, and the error convention.

A node module declares each node once, beside its code::

    @registry.node(registry.Spec(
        id="DependencyNoise", display_name="Dependency Noise", method="ZS2", function="get_noise",
        inputs={"noise_seed": ("INT", {...})}, optional={...},
        outputs=(("NOISE", "noise", "tooltip"),), description="...", aliases=(...)))
    class DependencyNoise:
        def get_noise(self, noise_seed, ...): ...

and this module derives everything ComfyUI reads from it (V1 node API; V3 is still marked unstable in
ComfyUI 0.33.0): ``INPUT_TYPES``, ``RETURN_TYPES`` / ``RETURN_NAMES`` / ``OUTPUT_TOOLTIPS``, ``FUNCTION``,
``CATEGORY`` (``training_free_video/<method>``), ``DESCRIPTION``, ``SEARCH_ALIASES`` (served as
``search_aliases`` by ComfyUI 0.33.0's ``/object_info``; ignored by 0.3.64), ``NODE_NAME`` (the display
name) and the pack's ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` (:func:`mappings`).
Node ids are what saved workflows store: never change one.

**Errors.** The core (``samplers/``, ``attention/``) and the nodes raise ``ValueError`` with the message
only (``"model: this UNet has ..."``, naming the input and the fix). :func:`node` wraps the node's
function so that such an error reaches the user as ``"<display name>: <message>"``, exactly once
(:class:`NodeError` marks a message that already carries a node's name). Code that runs later, inside
a sampler (model wrappers, noise generators) names its own errors (:func:`.errors.naming`, :class:`NodeError`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

from .errors import NodeError, named, naming, prefixed

CATEGORY_ROOT = "training_free_video"
METHODS = ("SmoothInit", "I4VGen", "ZS2", "FreeInit")

# Search terms users type, shared by the nodes of a method (each Spec lists its own terms too).
VIDEO_TERMS = ("text2video", "text to video", "t2v", "training-free video", "zero-shot video")
NOISE_INIT_TERMS = ("noise init", "noise initialization", "initial noise", "optimize noise")
SMOOTHINIT_TERMS = ("smoothinit", "smooth init", "smooth noise", "temporal consistency", "consistency",
                    "flicker") + NOISE_INIT_TERMS
ZS2_TERMS = ("zs2", "zs^2", "zero-shot", "image model to video") + VIDEO_TERMS
I4VGEN_TERMS = ("i4vgen", "image to video", "animate image", "img2vid", "i2v", "anchor image")
FREEINIT_TERMS = ("freeinit", "free init", "noise reinitialization", "low frequency", "frequency filter",
                  "temporal consistency", "consistency") + NOISE_INIT_TERMS


@dataclass(frozen=True)
class Spec:
    """What ComfyUI needs to know about a node, declared once.

    Args:
        id: the key in ``NODE_CLASS_MAPPINGS`` (saved workflows store it: stable forever).
        display_name: the title users see; also the prefix of the node's error messages.
        method: one of :data:`METHODS`; gives the category ``training_free_video/<method>``.
        function: the name of the method ComfyUI calls.
        inputs / optional / hidden: ``{name: (type, options)}`` as in V1 ``INPUT_TYPES``; a callable ``type``
            is called each time ComfyUI asks (a combo of files that changes while ComfyUI runs).
        outputs: ``((type, name, tooltip), ...)``.
        description: the node's ``DESCRIPTION`` (shown in the node library and the node's info panel).
        aliases: search terms (deduplicated in order).
        output_node: ComfyUI's ``OUTPUT_NODE`` (a node with a side effect, e.g. saving a file).
        input_is_list: ComfyUI's ``INPUT_IS_LIST`` (the function gets every input as a list).
    """
    id: str
    display_name: str
    method: str
    function: str
    inputs: dict
    outputs: tuple
    description: str
    optional: dict = field(default_factory=dict)
    hidden: dict = field(default_factory=dict)
    aliases: tuple = ()
    output_node: bool = False
    input_is_list: bool = False

    @property
    def category(self) -> str:
        return f"{CATEGORY_ROOT}/{self.method}"

    def input_types(self) -> dict:
        """V1 ``INPUT_TYPES``: ``{"required": ..., "optional": ..., "hidden": ...}`` (empty groups left out)."""
        def resolved(group: dict) -> dict:
            return {k: ((v[0]() if callable(v[0]) else v[0]),) + tuple(v[1:]) for k, v in group.items()}
        types = {"required": resolved(self.inputs)}
        if self.optional:
            types["optional"] = resolved(self.optional)
        if self.hidden:
            types["hidden"] = resolved(self.hidden)
        return types


_NODES: dict[str, tuple[Spec, type]] = {}


def node(spec: Spec) -> Callable[[type], type]:
    """Class decorator: give the class everything ComfyUI reads from ``spec`` and register it.

    Raises:
        ValueError: (at import) an unknown method, a duplicate id or display name, or a class without
            ``spec.function`` -- a mistake in the pack, found by any test that imports it.
    """
    if spec.method not in METHODS:
        raise ValueError(f"node {spec.id}: method must be one of {list(METHODS)}, got {spec.method!r}")
    if spec.id in _NODES or any(s.display_name == spec.display_name for s, _ in _NODES.values()):
        raise ValueError(f"node {spec.id}: id or display name {spec.display_name!r} declared twice")

    def declare(cls: type) -> type:
        if not callable(getattr(cls, spec.function, None)):
            raise ValueError(f"node {spec.id}: {cls.__name__} has no method {spec.function!r}")
        cls.INPUT_TYPES = classmethod(lambda c: spec.input_types())
        cls.RETURN_TYPES = tuple(o[0] for o in spec.outputs)
        cls.RETURN_NAMES = tuple(o[1] for o in spec.outputs)
        cls.OUTPUT_TOOLTIPS = tuple(o[2] for o in spec.outputs)
        cls.FUNCTION = spec.function
        cls.CATEGORY = spec.category
        cls.DESCRIPTION = spec.description
        cls.SEARCH_ALIASES = list(dict.fromkeys(spec.aliases))
        cls.NODE_NAME = spec.display_name
        if spec.output_node:
            cls.OUTPUT_NODE = True
        if spec.input_is_list:
            cls.INPUT_IS_LIST = True
        fn = getattr(cls, spec.function)

        @functools.wraps(fn)
        def run(self, *args, **kwargs):
            with naming(spec.display_name):
                return fn(self, *args, **kwargs)

        setattr(cls, spec.function, run)
        cls.SPEC = spec
        _NODES[spec.id] = (spec, cls)
        return cls

    return declare


def mappings(module: str | None = None) -> tuple[dict, dict]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` of every declared node, or of the nodes
    declared in ``module`` (a module's ``__name__``)."""
    nodes = {i: (s, c) for i, (s, c) in _NODES.items() if module is None or c.__module__ == module}
    return ({i: c for i, (_, c) in nodes.items()}, {i: s.display_name for i, (s, _) in nodes.items()})


__all__ = ["CATEGORY_ROOT", "METHODS", "NodeError", "Spec", "node", "named", "naming", "prefixed",
           "mappings", "VIDEO_TERMS", "NOISE_INIT_TERMS", "SMOOTHINIT_TERMS", "ZS2_TERMS", "I4VGEN_TERMS",
           "FREEINIT_TERMS"]

"""The pack's error convention (see :mod:`.registry`): the core and the bridge raise ``ValueError`` with the
message only; the node's name is added once, as ``"<display name>: <message>"``, by the node's declared
function (:func:`.registry.node`, through :func:`naming`) or, for code ComfyUI runs later inside a sampler, by
:func:`naming` around the pack's own checks or a :class:`NodeError` raised there.
Pure Python (no ``comfy`` import): the bridge uses it too."""
from __future__ import annotations

import contextlib
from typing import Iterator


class NodeError(ValueError):
    """A ``ValueError`` whose message already starts with a node's display name (``node``)."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node = node


def named(node: str, error: ValueError) -> NodeError:
    """``error`` as a :class:`NodeError` of ``node`` (unchanged if it already is one)."""
    if isinstance(error, NodeError):
        return error
    return NodeError(node, str(error))


def prefixed(node: str, text: str) -> str:
    """A message (e.g. a warning for the log) in the pack's form ``"<node>: <text>"``."""
    return f"{node}: {text}"


@contextlib.contextmanager
def naming(node: str) -> Iterator[None]:
    """``with naming(node): ...``: a ``ValueError`` raised inside reaches the user as ``"<node>: <message>"``
    (once). For the pack's own checks that run inside a sampler; keep ComfyUI's calls outside it, so their
    errors are not put in the node's name."""
    try:
        yield
    except NodeError:
        raise
    except ValueError as e:
        raise named(node, e) from e


__all__ = ["NodeError", "named", "naming", "prefixed"]

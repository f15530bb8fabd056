"""Per-frame schedules for ZS^2's lambda_i (Dependency Noise) and mu_i (Temporal Momentum Attention).

Pure Python (no ``comfy`` import, no torch needed). ZS^2 indexes both quantities by frame (Sec. 3.1
Algorithm 1: a target KL ``lambda_i`` for every frame ``i = 2..F``; Sec. 4.1 Eq. 2 and Fig. 4: a
momentum ``mu_i`` for every frame ``i = 1..F``). Nodes take them as text, because the number of
frames ``F`` is only known when the latent (or the model call) arrives:

* a comma-separated list ``"0.01, 0.02, 0.05"``: value ``k`` is for the ``k``-th scheduled frame;
  when the video has more frames than values, the last value repeats; values past the video's
  last frame are ignored (so one schedule serves shorter videos);
* a linear ramp ``"start:end"``: ``start`` at the first scheduled frame, ``end`` at the last, linear
  in between (one scheduled frame: ``start``);
* empty text: no schedule (the node's scalar input is used, giving exactly the scalar result).

Which frames are scheduled is the caller's convention: lambda_i for frames ``2..F`` (``F - 1``
values; frame 1 has no previous frame), mu_i for frames ``1..F`` (``F`` values; mu_1 is never used
because ``K'_1 = K_1``, but it keeps value ``k`` = frame ``k``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class FrameSchedule:
    """A parsed schedule: explicit ``values`` (``ramp=False``) or ``values = (start, end)`` (``ramp=True``)."""

    values: tuple[float, ...]
    ramp: bool = False

    def resolve(self, length: int) -> list[float]:
        """The per-frame values for ``length`` scheduled frames (``length >= 0``).

        List: the first ``length`` values, the last one repeated if the list is shorter. Ramp:
        ``start + (end - start) * k / (length - 1)`` for ``k = 0..length-1`` (``[start]`` for one).
        """
        length = int(length)
        if length <= 0:
            return []
        if self.ramp:
            start, end = self.values
            if length == 1:
                return [start]
            return [start + (end - start) * k / (length - 1) for k in range(length)]
        vals = list(self.values[:length])
        vals += [self.values[-1]] * (length - len(vals))
        return vals

    def is_constant(self) -> bool:
        """True when every frame gets the same value (a one-value list, or a ramp with start == end)."""
        return len(set(self.values)) == 1

    def __str__(self) -> str:
        if self.ramp:
            return f"{self.values[0]:g}:{self.values[1]:g}"
        return ", ".join(f"{v:g}" for v in self.values)


def _number(token: str, input_name: str, fix: str) -> float:
    t = token.strip()
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{input_name}: {t!r} is not a number. {fix}") from None
    if not math.isfinite(v):
        raise ValueError(f"{input_name}: {t!r} is not a finite number. {fix}")
    return v


_NUMBER_CHARS = set("0123456789.eE+-")
_LEADING_ZERO = re.compile(r"^[+-]?0[0-9]")


def ambiguous_number(text: str) -> str | None:
    """Why ``text`` (a schedule) holds a number that reads two ways, or ``None``.

    The rule (a decimal comma, e.g. ``"0,01"`` typed for 0.01, must never parse as two values):

    * a comma with a digit directly before and directly after it (no space) is ambiguous when
      neither number it separates contains a ``.`` or an exponent: ``"0,01"``, ``"1,5"``,
      ``"10,20"`` (a decimal comma or two values?); ``"0.01,0.02"``, ``"0.5,1"``, ``"1e-2,2e-2"``
      and ``"0, 1"`` are unambiguous lists;
    * a value written with a leading zero followed by a digit (``"01"``, ``"005"``) is the fraction
      part of a decimal comma (``"0, 01"``), never a value anyone writes.
    """
    for i, c in enumerate(text):
        if c != "," or i == 0 or i + 1 >= len(text) or not (text[i - 1].isdigit() and text[i + 1].isdigit()):
            continue
        a, b = i, i + 1
        while a > 0 and text[a - 1] in _NUMBER_CHARS:
            a -= 1
        while b < len(text) and text[b] in _NUMBER_CHARS:
            b += 1
        left, right = text[a:i], text[i + 1:b]
        if not any(ch in left + right for ch in ".eE"):
            return (f"the comma in '{left},{right}' reads as a decimal comma ({left}.{right}) or as two values "
                    f"({left} and {right})")
    for token in re.split(r"[,:]", text):
        t = token.strip()
        if _LEADING_ZERO.match(t):
            return f"'{t}' has a leading zero (the fraction part of a decimal comma?)"
    return None


def parse_frame_schedule(text, *, input_name: str, minimum: float | None = None,
                         maximum: float | None = None, what: str = "value") -> FrameSchedule | None:
    """Parse a per-frame schedule typed into a node.

    Args:
        text: ``""`` (or only spaces) -> ``None``; ``"a, b, c"`` (commas; an empty item such as a
            trailing comma is skipped) or ``"start:end"``. A number alone is a one-value list.
        input_name: named in every error message (the node adds its own name, see the pack's error
            convention).
        minimum, maximum: inclusive bounds every value (both ends of a ramp) must respect.
        what: the quantity's name for the messages (e.g. ``"lambda_i"``).

    Returns:
        A :class:`FrameSchedule`, or ``None`` for empty text.

    Raises:
        ValueError: ``"{input_name}: ..."`` with the offending token and the fix, for a
            non-number, a non-finite number, a value outside ``[minimum, maximum]``, more than one
            ``:`` or a ramp mixed with commas, and for an ambiguous number (:func:`ambiguous_number`:
            a decimal comma such as ``"0,01"``, which must not silently become the two values 0 and 1).
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"{input_name}: expected text, got {type(text).__name__}.")
    s = text.strip()
    if not s:
        return None
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum:g}")
    if maximum is not None:
        bounds.append(f"<= {maximum:g}")
    rule = f"each {what} must be a number" + (" " + " and ".join(bounds) if bounds else "")
    fix = (f"Write comma-separated numbers (one per frame, e.g. '0.01, 0.02, 0.05'; the last repeats) or a "
           f"linear ramp 'start:end' (e.g. '0.01:0.1'); {rule}; leave it empty to use the scalar input.")
    why = ambiguous_number(s)
    if why is not None:
        raise ValueError(f"{input_name}: {s!r} is ambiguous: {why}. Use a dot for decimals and a comma followed by a "
                         f"space between values, e.g. '0.01' for one value, '0, 0.01' or '0.01, 0.02' for two. {fix}")
    if ":" in s:
        parts = s.split(":")
        if len(parts) != 2 or "," in s:
            raise ValueError(f"{input_name}: {s!r} is not a ramp 'start:end' (exactly two numbers around one ':', no "
                             f"commas). {fix}")
        vals = tuple(_number(p, input_name, fix) for p in parts)
        ramp = True
    else:
        tokens = [t for t in s.split(",") if t.strip()]
        if not tokens:
            raise ValueError(f"{input_name}: {s!r} holds no number. {fix}")
        vals = tuple(_number(t, input_name, fix) for t in tokens)
        ramp = False
    for v in vals:
        if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
            raise ValueError(f"{input_name}: {what} = {v:g} is out of range: {rule}. {fix}")
    return FrameSchedule(vals, ramp)

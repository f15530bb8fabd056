"""ZS^2 long videos in chunks: the paper's auto-regressive mode (Sec. 5).

Pure torch (no ``comfy`` import). Source: ZS^2 ("ZS^2: Zero-Shot Video Sampling from Image
Diffusion Models"), Sec. 5: "an arbitrary number of frames ... by using our method in an
auto-regressive manner, where the last generated frame m is used as the initial frame for computing
the subsequent m frames"; docs/algorithms.md section 3.3 (long videos auto-regressively: the last
frame of a chunk is the first frame of the next).

An ``F``-frame video (frames are the batch of an image-model latent ``[F, C, H, W]``) is sampled in
chunks of at most ``m`` frames that overlap by one *seam* frame (:func:`plan_chunks`)::

    chunk 0 = frames 0 .. m-1,  chunk k = frames k(m-1) .. k(m-1)+m-1  (the last may be shorter)

Chunk ``k >= 1`` starts with the seam frame ``k(m-1)``, the last frame of chunk ``k-1``. While chunk
``k-1`` samples, the seam frame's model input ``x`` and CFG denoised output (x0) are recorded at every
model call (:class:`SeamTrajectory`); in chunk ``k`` every model call with the same sigma gets the
recorded input for frame 0 and returns the recorded denoised for it (:meth:`ChunkState.model_call`).
So:

* the other frames of chunk ``k`` (through Temporal Momentum Attention: frame 0 is the momentum
  anchor) see exactly the trajectory the seam frame had as the last frame of chunk ``k-1``;
* for samplers whose update of a frame uses only that frame's ``x`` and denoised (every deterministic
  k-diffusion sampler: euler/ddim, heun, dpm_2, lms, dpmpp_2m, ipndm, deis, uni_pc, ...) the sampler's
  own state of the seam frame in chunk ``k`` reproduces chunk ``k-1``'s trajectory too (its initial noise
  is the same slice of the full-video noise);
* ancestral/SDE samplers add fresh noise to every frame at each step, so their own state of the
  seam frame drifts from the recorded one; the model still sees the recorded seam at every call
  (imposed), and the seam frame in the output is always chunk ``k-1``'s.

The output is one latent with all ``F`` frames (:func:`stitch`: each chunk's seam frame is dropped,
never duplicated). With ``F <= m`` there is one chunk and nothing is imposed or recorded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

SIGMA_REL_TOL = 1e-5


def plan_chunks(frames: int, chunk: int) -> list[tuple[int, int]]:
    """Frame ranges ``[(start, end), ...]`` (end exclusive) of the chunks of an ``frames``-frame video.

    ``chunk`` (m, >= 2) is the most frames in one chunk; consecutive chunks share one frame (the seam:
    ``start_k = end_(k-1) - 1``); the last chunk may be shorter (at least 2 frames). ``frames <= chunk``
    gives the single chunk ``[(0, frames)]``. Number of chunks: ``ceil((frames - 1) / (chunk - 1))``
    for ``frames > chunk`` (64 frames at m = 8: 9 chunks).

    Raises ValueError for ``chunk < 2`` or ``frames < 1``.
    """
    frames, chunk = int(frames), int(chunk)
    if chunk < 2:
        raise ValueError(f"chunk must be >= 2 frames (one seam frame + at least one new frame), got {chunk}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if frames <= chunk:
        return [(0, frames)]
    plan, start = [], 0
    while True:
        end = min(start + chunk, frames)
        plan.append((start, end))
        if end == frames:
            return plan
        start = end - 1


def chunk_frame_params(start: int, end: int, frames: int, outer: dict | None = None) -> dict:
    """AnimateDiff-style frame indices of the chunk holding frames ``start .. end - 1`` of an
    ``frames``-frame video, for ``transformer_options["ad_params"]``: ``{"full_length": frames,
    "context_length": end - start, "sub_idxs": [start, ..., end - 1]}`` (global frame indices, the
    keys AnimateDiff-Evolved exposes for its context windows; other packs' per-frame inputs, e.g.
    IPAdapter image batches, and the pack's per-frame schedules index by them).

    ``outer``: ``ad_params`` already in the sampler's options (the ``frames`` frames are themselves a
    window of a longer video): when its ``sub_idxs`` lists ``frames`` indices, the chunk's indices are
    those entries and ``full_length`` is ``outer``'s; its other keys are kept. Returns a new dict.
    """
    start, end, frames = int(start), int(end), int(frames)
    sub, full = list(range(start, end)), frames
    out = dict(outer) if isinstance(outer, dict) else {}
    outer_sub = out.get("sub_idxs")
    if outer_sub is not None and len(outer_sub) == frames:
        sub = [int(outer_sub[i]) for i in range(start, end)]
        full = int(out.get("full_length") or (max(int(i) for i in outer_sub) + 1))
    out.update({"full_length": full, "context_length": end - start, "sub_idxs": sub})
    return out


def stitch(parts: Sequence[Tensor], plan: Sequence[tuple[int, int]], dim: int = 0) -> Tensor:
    """Join chunk outputs into one video along ``dim`` (the frame axis), dropping the seam frame
    (frame 0) of every chunk after the first. ``parts[k]`` must have ``end_k - start_k`` frames;
    the result has ``plan[-1][1]`` frames. Raises ValueError on a length mismatch."""
    if len(parts) != len(plan):
        raise ValueError(f"stitch: {len(parts)} chunk outputs for {len(plan)} planned chunks")
    pieces = []
    for k, (part, (s, e)) in enumerate(zip(parts, plan)):
        if part.shape[dim] != e - s:
            raise ValueError(f"stitch: chunk {k} has {part.shape[dim]} frames, planned {e - s} (frames {s}..{e - 1})")
        pieces.append(part if k == 0 else part.narrow(dim, 1, part.shape[dim] - 1))
    return torch.cat(pieces, dim=dim)


@dataclass
class SeamEntry:
    sigma: float
    x: Tensor          # the seam frame's model input [C, H, W] (after any inpaint blending)
    denoised: Tensor   # its CFG denoised x0 [C, H, W]
    used: bool = False


def _same_sigma(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=SIGMA_REL_TOL, abs_tol=1e-12)


@dataclass
class SeamTrajectory:
    """The last frame's ``(sigma, x, denoised)`` at every model call of one chunk, in call order.

    ``sigma`` is in the model's sigma space (a float); tensors are copies ``[C, ...]``.
    """
    entries: list[SeamEntry] = field(default_factory=list)

    def record(self, sigma: float, x: Tensor, denoised: Tensor) -> None:
        self.entries.append(SeamEntry(float(sigma), x.detach().clone(), denoised.detach().clone()))

    def __len__(self) -> int:
        return len(self.entries)

    def reset_matches(self) -> None:
        for e in self.entries:
            e.used = False

    def match(self, sigma: float) -> SeamEntry | None:
        """The earliest not-yet-matched entry recorded at ``sigma`` (relative tolerance 1e-5), marked
        as matched: the j-th call at a sigma gets the j-th recording at that sigma (samplers that call
        the model twice per step, e.g. heun, or at repeated sigmas stay aligned). ``None`` when no
        entry matches (only adaptive samplers such as dpm_adaptive choose batch-dependent sigmas)."""
        sigma = float(sigma)
        for e in self.entries:
            if not e.used and _same_sigma(e.sigma, sigma):
                e.used = True
                return e
        return None


@dataclass
class ChunkState:
    """One chunk's seam bookkeeping: ``impose`` is the previous chunk's recorded last frame (None for
    chunk 0), ``record`` collects this chunk's last frame (None for the last chunk).

    Counters: ``calls`` (model calls), ``imposed`` (calls where frame 0 got the recorded trajectory),
    ``unmatched`` (calls at a sigma the previous chunk never used: frame 0 left as the sampler has it).
    """
    index: int
    start: int
    end: int
    impose: SeamTrajectory | None = None
    record: SeamTrajectory | None = None
    calls: int = 0
    imposed: int = 0
    unmatched: int = 0

    @property
    def frames(self) -> int:
        return self.end - self.start

    def model_call(self, denoise: Callable[[Tensor], Tensor], x: Tensor, sigma: float) -> Tensor:
        """``denoise(x) -> x0`` for the chunk's frames ``x`` ``[m_k, C, ...]`` at ``sigma``, with frame 0
        set to the recorded seam (input and output) and the last frame recorded.

        Returns a tensor of ``x``'s shape; ``x`` itself is never modified in place.
        """
        self.calls += 1
        entry = self.impose.match(sigma) if self.impose is not None else None
        if self.impose is not None and entry is None:
            self.unmatched += 1
        if entry is not None:
            x = x.clone()
            x[0] = entry.x.to(device=x.device, dtype=x.dtype)
        out = denoise(x)
        if entry is not None:
            out = out.clone()
            out[0] = entry.denoised.to(device=out.device, dtype=out.dtype)
            self.imposed += 1
        if self.record is not None:
            self.record.record(sigma, x[-1], out[-1])
        return out


def sample_in_chunks(sample_chunk: Callable[[ChunkState], Tensor], frames: int, chunk: int,
                     store: Callable[[Tensor], Tensor] = lambda t: t,
                     before_chunk: Callable[[ChunkState], None] = lambda s: None,
                     frame_dim: int = 0) -> tuple[Tensor, list[ChunkState]]:
    """Sample an ``frames``-frame video chunk by chunk (the ZS^2 auto-regressive mode).

    ``sample_chunk(state)`` samples frames ``state.start .. state.end - 1`` (the caller slices its
    noise/latent; every model call must go through ``state.model_call``) and returns them
    ``[m_k, ...]``; ``store`` moves each chunk's output to where the full video is kept (e.g. the
    CPU); ``before_chunk`` runs first (e.g. an interrupt check). Returns the stitched ``[frames, ...]``
    video and the chunk states (counters, for tests and reports).
    """
    plan = plan_chunks(frames, chunk)
    parts, states, prev = [], [], None
    for k, (s, e) in enumerate(plan):
        state = ChunkState(k, s, e, impose=prev, record=SeamTrajectory() if k < len(plan) - 1 else None)
        before_chunk(state)
        out = sample_chunk(state)
        parts.append(store(out))
        states.append(state)
        prev = state.record
    return stitch(parts, plan, dim=frame_dim), states

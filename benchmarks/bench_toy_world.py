"""Benchmark: the papers' claims measured on a small text-to-image model that has learned something.

The toy world (``benchmarks/toy_world``): 64x64 pictures of one coloured shape, captions
"a <colour> <shape>", a one-level SD1.5-format UNet + TAESD + CLIP-L (random, fixed) trained here
(``python -m benchmarks.toy_world.build``, cached outside the repository) and a judge that reads
colour, shape and position from decoded pictures and can say "no shape". Every run goes through the
real ComfyUI, with the shipped node classes as ComfyUI loads them: CheckpointLoaderSimple ->
CLIPTextEncode -> the pack's nodes -> KSampler -> VAEDecode.

Each run writes its per-item results to ``<out>/<table>__<row>__<part>.csv`` with a JSON sidecar of
the run's settings; ``python -m benchmarks.toy_world.report`` checks the settings and merges them
into ``docs/toy_world/tables.md`` and the README's evidence section.

Tables (``--tables``; rows ``--rows`` by name, ``;``-separated):

* ``judge``: the judge on VAEEncode -> VAEDecode of fresh world pictures (agreement with the
  generator's labels) and its reject rate on uniform noise and on shapeless blobs.
* ``smoothinit``: pictures (one prompt per latent, batches of ``--batch``: 12 prompts x batch/12;
  batch c has KSampler seed ``seed + c``, so the same items under every method are paired):
  plain / Forward-Inversion / SmoothInit-30 / Fast-SmoothInit-10 / -30 at ``--cfgs``; the noise
  optimiser's w1 follows the sampler's CFG (the node's cfg 0) unless ``--w1`` is given.
* ``zs2``: 8-frame videos (frames = the batch; video j: prompt VIDEO_ORDER[j % 12], seed + j):
  independent frames, Dependency Noise, TMA, both, momentum and lambda sweeps.
* ``i4vgen``: anchor picture -> Static Video From Latent -> NI-VSDS Animate -> KSampler regeneration
  on the ZS^2 video model; ablations: static video alone, regeneration without NI-VSDS, anchor chosen
  by the judge's score among 4 candidates (I4VGen Anchor Select) vs the first (random) candidate.
* ``i4vgen_anchor``: how much of the anchor survives NI-VSDS (two different anchors, same eps*: the
  animated latents' difference over the static latents' difference).
* ``freeinit``: FreeInit (KSampler) on the ZS^2 video model: 3 and 5 iterations, 3 coarse-to-fine;
  and on pictures (batch 1 per call: FreeInit's FFT couples the pictures of one batch).

Usage::

    python benchmarks/bench_toy_world.py --tables smoothinit --cfgs 7.5 --rows "plain;Forward-Inversion" --n 600
    python benchmarks/bench_toy_world.py --tables zs2 --videos 48 --rows "independent frames"
    python -m benchmarks.toy_world.report
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

from benchmarks.toy_world import build as B  # noqa: E402
from benchmarks.toy_world import metrics as M  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402

SAMPLER, SCHEDULER = "ddim", "ddim_uniform"
RESULTS = REPO / "docs" / "toy_world" / "results"
VIDEO_ORDER = (0, 4, 8, 9, 1, 5, 2, 6, 10, 3, 7, 11)  # every 3 consecutive: 3 colours, 3 shapes


# ------------------------------------------------------------------------------------ helpers
def node(name: str):
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[name]()


def call(name: str, **kwargs):
    """Call a node class from ComfyUI's registry with its declared defaults for inputs not given, under
    ``torch.inference_mode`` as ComfyUI's executor does. Raises TypeError on an input name the node does
    not declare."""
    inst = node(name)
    spec = type(inst).INPUT_TYPES()
    unknown = set(kwargs) - {k for section in ("required", "optional") for k in spec.get(section, {})}
    if unknown:  # a misspelt input would silently run at its default
        raise TypeError(f"call({name!r}): no input named {sorted(unknown)}")
    args = {}
    for section in ("required", "optional"):
        for key, val in spec.get(section, {}).items():
            if key in kwargs:
                args[key] = kwargs[key]
            elif section == "required":
                opts = val[1] if len(val) > 1 and isinstance(val[1], dict) else {}
                if "default" in opts:
                    args[key] = opts["default"]
                elif isinstance(val[0], list):
                    args[key] = val[0][0]
    with torch.inference_mode():  # as ComfyUI's executor runs every node (execution.py)
        out = getattr(inst, type(inst).FUNCTION)(**args)
    return out.result if hasattr(out, "result") else out


class Toy:
    """The toy model loaded through CheckpointLoaderSimple, with its prompts encoded by CLIPTextEncode."""

    def __init__(self):
        import checkpoints as ck
        path = B.checkpoint_path()
        if not path.exists():
            raise SystemExit(f"no toy checkpoint at {path}: run `python -m benchmarks.toy_world.build` first")
        with ck.registered_folder("checkpoints", path.parent):
            self.model, self.clip, self.vae = call("CheckpointLoaderSimple", ckpt_name=path.name)[:3]
        self.cond = [call("CLIPTextEncode", clip=self.clip, text=c)[0] for c in W.CAPTIONS]
        self.negative = call("CLIPTextEncode", clip=self.clip, text="")[0]

    def batched(self, labels) -> list:
        """One CONDITIONING whose batch holds one prompt per latent (labels [N])."""
        t = torch.cat([self.cond[int(k)][0][0] for k in labels])
        pooled = torch.cat([self.cond[int(k)][0][1]["pooled_output"] for k in labels])
        return [[t, {"pooled_output": pooled}]]

    def negative_batch(self, n: int) -> list:
        c = self.negative[0]
        return [[c[0].expand(n, -1, -1).clone(), {"pooled_output": c[1]["pooled_output"].expand(n, -1).clone()}]]

    def decode(self, latent) -> torch.Tensor:
        img = call("VAEDecode", vae=self.vae, samples=latent)[0]       # [N, H, W, 3]
        return img.permute(0, 3, 1, 2).float().cpu()

    def sample(self, model, labels, seed: int, steps: int, cfg: float, latent=None, denoise: float = 1.0):
        """KSampler over a batch with one prompt per latent (or one prompt for all when ``labels`` is an int)."""
        if isinstance(labels, int):
            pos, neg = self.cond[labels], self.negative
            n = None
        else:
            pos, neg = self.batched(labels), self.negative_batch(len(labels))
            n = len(labels)
        if latent is None:
            latent = call("EmptyLatentImage", width=64, height=64, batch_size=n)[0]
        return call("KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=SAMPLER,
                    scheduler=SCHEDULER, positive=pos, negative=neg, latent_image=latent, denoise=denoise)[0]


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", s).strip("-")


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def common_settings(a, table: str) -> dict:
    """Settings that every run merged into one table must share (checked by ``report``)."""
    import comfyui_version
    s = {"table": table, "checkpoint_sha256_16": file_sha(B.checkpoint_path()), "sampler": SAMPLER,
         "scheduler": SCHEDULER, "steps": a.steps, "comfyui": comfyui_version.__version__,
         "torch": torch.__version__.split("+")[0],
         "judge": {k: getattr(W, k) for k in ("FG_THRESHOLD", "MIN_AREA", "MAX_AREA", "TRIANGLE_SKEW",
                                               "MATCH_MIN", "COLOUR_MAX")}}
    if table == "smoothinit":
        s.update(batch=a.batch, seed_base=a.seed)
    elif table in ("zs2", "i4vgen", "freeinit", "i4vgen_anchor"):
        s.update(frames=a.frames, video_cfg=a.cfg, seed_base=a.seed)
    if table in ("i4vgen", "i4vgen_anchor"):
        s.update(nivsds_steps=a.nivsds_steps)
    if table == "freeinit":
        s.update(picture_cfg=7.5)
    return s


def git_rev() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


_CPU = {"last": None}


def write_part(out: Path, table: str, row: str, part: str, settings: dict, rows: list, wall: float,
               extra: dict | None = None) -> Path:
    """Write one run's per-item CSV and its settings sidecar (``.json``; with the wall time and the
    process CPU time since the previous part, the cost on an otherwise idle core)."""
    now = time.process_time()
    cpu = now - (_CPU["last"] if _CPU["last"] is not None else now - wall)
    _CPU["last"] = now
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{table}__{slug(row)}__{part}"
    keys = list(rows[0].keys())
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    meta = {"settings": settings, "row": row, "part": part, "items": len(rows), "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "threads": torch.get_num_threads(), "git": git_rev(), "machine": platform.machine(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    meta.update(extra or {})
    (out / f"{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"  wrote {stem}.csv ({len(rows)} items, {wall:.0f}s)", flush=True)
    return out / f"{stem}.csv"


def save_pictures(key: str, img: torch.Tensor) -> None:
    """Decoded pictures for make_pictures.py (cache, not the repository)."""
    d = B.cache_dir() / "bench"
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"pictures_{slug(key)}.pt"
    torch.save({key: img.half()}, f)


# ------------------------------------------------------------------------------------ judge
def bench_judge(toy: Toy, a, settings: dict, out: Path) -> None:
    t0 = time.time()
    g = torch.Generator().manual_seed(4321)
    rows = []
    for kind in ("roundtrip", "noise", "blobs"):
        for start in range(0, a.judge_n, 120):
            k = min(120, a.judge_n - start)
            if kind == "roundtrip":
                b = W.sample(k, g)
                lat = call("VAEEncode", vae=toy.vae, pixels=b.images.permute(0, 2, 3, 1))[0]
                img, labels = toy.decode(lat), b.labels
            elif kind == "noise":
                img, labels = torch.rand(k, 3, 64, 64, generator=g), torch.zeros(k, dtype=torch.long)
            else:
                img, labels = W.blobs(k, g), torch.zeros(k, dtype=torch.long)
            for i, r in enumerate(M.picture_rows(img, labels)):
                if kind != "roundtrip":
                    r["prompt"] = -1
                    r["correct"] = int(r["judged"] == -1)
                rows.append(dict(method="judge", kind=kind, item=start + i, **r))
    write_part(out, "judge", "judge", "all", settings, rows, time.time() - t0)


# ------------------------------------------------------------------------------------ SmoothInit
SI_ROWS = ["plain", "Forward-Inversion", "SmoothInit-30", "Fast-SmoothInit-10", "Fast-SmoothInit-30"]


def bench_smoothinit(toy: Toy, a, settings: dict, out: Path) -> None:
    if a.batch % W.N_CLASSES or a.n % a.batch:
        raise SystemExit(f"--batch must be a multiple of 12 and --n a multiple of --batch ({a.batch}, {a.n})")
    labels = torch.arange(W.N_CLASSES).repeat(a.batch // W.N_CLASSES)
    chunks = range(a.n // a.batch)
    if a.chunks:
        lo, hi = (int(x) for x in a.chunks.split(":"))
        chunks = range(lo, min(hi, a.n // a.batch))
    # chunk-major: after every batch each row has the same items, so a run cut short stays paired
    models = {}
    for c in chunks:
        seed = a.seed + c
        for cfg in [float(x) for x in a.cfgs.split(",")]:
            for name in SI_ROWS:
                if a.rows and name not in a.rows:
                    continue
                w1 = cfg if a.w1 == 0 else a.w1
                if name not in models:
                    models[name] = toy.model if name == "plain" else \
                        call("SmoothInitModelPatch", model=toy.model, method=name, cfg=a.w1)[0]
                t0 = time.time()
                img = toy.decode(toy.sample(models[name], labels, seed, a.steps, cfg))
                rows = [dict(method=name, cfg=cfg, w1=w1 if name != "plain" else "", seed=seed, index=i, **r)
                        for i, r in enumerate(M.picture_rows(img, labels))]
                if c == 0:
                    save_pictures(f"smoothinit/cfg{cfg}/{name}", img[:W.N_CLASSES])
                acc = sum(r["correct"] for r in rows) / len(rows)
                print(f"  SmoothInit cfg {cfg} {name}: batch {c} seed {seed}, accuracy {acc:.3f}", flush=True)
                write_part(out, "smoothinit", name, f"cfg{cfg}_c{c}", settings, rows, time.time() - t0,
                           {"cfg": cfg, "w1": w1})


# ------------------------------------------------------------------------------------ videos
ZS2_ROWS = {  # name: (mu, kl_lambda); None = node absent
    "independent frames": (None, None),
    "Dependency Noise alone (lambda 0.01)": (None, 0.01),
    "TMA alone (mu 0.98)": (0.98, None),
    "ZS^2: TMA mu 0.98 + DN lambda 0.01": (0.98, 0.01),
    "mu 0.5 + DN 0.01": (0.5, 0.01),
    "mu 0.9 + DN 0.01": (0.9, 0.01),
    "mu 1 + DN 0.01": (1.0, 0.01),
    "lambda 0.1 + TMA 0.98": (0.98, 0.1),
    "lambda 1 + TMA 0.98": (0.98, 1.0),
}
I4VGEN_ROWS = ["static anchor video (no animation)", "regeneration without NI-VSDS (p_re 0.8)",
               "I4VGen p_re 0.8", "I4VGen p_re 0.8, anchor by judge score (best of 4)", "I4VGen p_re 1.0"]
FREEINIT_ROWS = {  # name: (iterations, coarse_to_fine)
    "FreeInit 3 iterations": (3, False), "FreeInit 5 iterations": (5, False),
    "FreeInit 3 iterations coarse-to-fine": (3, True),
}
FREEINIT_PICTURE_ROWS = ["pictures: plain (batch 1)", "pictures: FreeInit 3 iterations (batch 1)"]


def zs2_model(toy: Toy, mu, kl_lambda):
    m = toy.model
    if mu is not None:
        m = call("TemporalMomentumAttention", model=m, momentum=mu)[0]
    if kl_lambda is not None:
        m = call("DependencyNoiseModelPatch", model=m, kl_lambda=kl_lambda)[0]
    return m


def video_list(a) -> list:
    """(prompt, seed) of video j: prompt VIDEO_ORDER[j % 12], seed ``a.seed + j``."""
    lo, hi = 0, a.videos
    if a.chunks:
        lo, hi = (int(x) for x in a.chunks.split(":"))
        hi = min(hi, a.videos)
    return [(VIDEO_ORDER[j % 12], a.seed + j, j) for j in range(lo, hi)]


def run_videos(toy: Toy, a, settings, out, table: str, rows_spec: list) -> None:
    """rows_spec: [(name, make_video(label, seed) -> latent, extra)]. Block-major: every row samples
    videos of a block of 12 (one per prompt) before the next block, and each (row, block) is written
    as its own part, so a run cut short leaves every row with the same videos."""
    vids = video_list(a)
    for b0 in range(0, len(vids), 12):
        block = vids[b0:b0 + 12]
        for name, make_video, extra in rows_spec:
            t0 = time.time()
            rows = []
            for label, seed, j in block:
                img = toy.decode(make_video(label, seed))
                rows.append(dict(method=name, video=j, seed=seed, **M.video_row(img, label)))
                if j < 12:
                    save_pictures(f"{table}/{name}/{label}", img)
            acc = sum(r["acc"] for r in rows) / len(rows)
            print(f"  {table} {name}: videos {block[0][2]}-{block[-1][2]}, per-frame accuracy {acc:.3f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
            write_part(out, table, name, f"v{block[0][2]}-{block[-1][2] + 1}", settings, rows, time.time() - t0,
                       extra)


def empty_video(a):
    return call("EmptyLatentImage", width=64, height=64, batch_size=a.frames)[0]


def bench_zs2(toy: Toy, a, settings, out) -> None:
    spec = []
    for name, (mu, lam) in ZS2_ROWS.items():
        if a.rows and name not in a.rows:
            continue
        model = zs2_model(toy, mu, lam)
        spec.append((name, lambda label, seed, model=model: toy.sample(model, label, seed, a.steps, a.cfg,
                                                                       empty_video(a)),
                     {"mu": mu, "kl_lambda": lam}))
    run_videos(toy, a, settings, out, "zs2", spec)


def i4vgen_anchor(toy: Toy, a, label: int, seed: int, best_of: int):
    """Anchor candidates: ``best_of`` pictures of the image model in one batch (seed ``seed``); candidate 0
    is the "random" anchor; with best_of > 1 I4VGen Anchor Select keeps the highest judge score (template
    IoU when the judged class is the prompt, else 0). Returns (latent batch, kept index)."""
    lat = toy.sample(toy.model, [label] * best_of, seed, a.steps, a.cfg)
    if best_of == 1:
        return lat, 0
    v = W.judge(toy.decode(lat))
    scores = [float(v.score[i]) if int(v.labels[i]) == label else 0.0 for i in range(best_of)]
    img = torch.zeros(best_of, 64, 64, 3)
    _, idx, _ = call("I4VGenAnchorSelect", images=[img], mode=["highest"], scores_text=[""], scores=[scores])
    return lat, int(idx)


def i4vgen_static_and_animated(toy: Toy, a, video_model, label: int, seed: int, lat, idx: int, animate=True):
    """Static Video From Latent of candidate ``idx`` and (``animate``) NI-VSDS Animate of it (seed + 7, its own
    ``--nivsds-steps`` schedule)."""
    static = call("I4VGenStaticVideoFromLatent", samples=lat, frames=a.frames, model=video_model, batch_index=idx)[0]
    if not animate:
        return static, None
    animated = call("NIVSDSAnimate", model=video_model, positive=toy.cond[label], negative=toy.negative,
                    latent_image=static, seed=seed + 7, steps=a.nivsds_steps, cfg=a.cfg, scheduler=SCHEDULER)[0]
    return static, animated


def bench_i4vgen(toy: Toy, a, settings, out) -> None:
    video_model = zs2_model(toy, 0.98, 0.01)
    spec = []
    for name in I4VGEN_ROWS:
        if a.rows and name not in a.rows:
            continue
        best_of = 4 if "best of 4" in name else 1
        p_re = 1.0 if "p_re 1.0" in name else 0.8

        def make(label, seed, name=name, best_of=best_of, p_re=p_re):
            lat, idx = i4vgen_anchor(toy, a, label, seed, best_of)
            if name.startswith("static"):
                return i4vgen_static_and_animated(toy, a, video_model, label, seed, lat, idx, animate=False)[0]
            static, animated = i4vgen_static_and_animated(toy, a, video_model, label, seed, lat, idx,
                                                          animate="without NI-VSDS" not in name)
            regen_from = static if animated is None else animated
            return toy.sample(video_model, label, seed + 13, a.steps, a.cfg, regen_from, denoise=p_re)

        spec.append((name, make, {"p_re": p_re, "best_of": best_of}))
    run_videos(toy, a, settings, out, "i4vgen", spec)


def bench_i4vgen_anchor(toy: Toy, a, settings, out) -> None:
    """How much of the anchor survives NI-VSDS. For each video, the 4 candidates of the best-of-4 row; where
    I4VGen Anchor Select keeps a candidate other than 0 (the random anchor), both static videos go through
    NI-VSDS Animate with the same seed (same eps*): retention = ||animated_kept - animated_0|| /
    ||static_kept - static_0|| (1 = the animation keeps the whole difference between the anchors, 0 = the
    output does not depend on the anchor)."""
    video_model = zs2_model(toy, 0.98, 0.01)
    t0, rows = time.time(), []
    for label, seed, j in video_list(a):
        lat, idx = i4vgen_anchor(toy, a, label, seed, 4)
        row = dict(method="anchor retention", video=j, seed=seed, prompt=label, kept=idx, retention=float("nan"),
                   static_diff=0.0, animated_diff=0.0)
        if idx != 0:
            s0, a0 = i4vgen_static_and_animated(toy, a, video_model, label, seed, lat, 0)
            s1, a1 = i4vgen_static_and_animated(toy, a, video_model, label, seed, lat, idx)
            ds = float((s1["samples"] - s0["samples"]).float().norm())
            da = float((a1["samples"] - a0["samples"]).float().norm())
            row.update(retention=da / ds, static_diff=ds, animated_diff=da)
            print(f"  i4vgen anchor retention: video {j}, kept {idx}, retention {da / ds:.4f}", flush=True)
        rows.append(row)
    lo, hi = rows[0]["video"], rows[-1]["video"] + 1
    write_part(out, "i4vgen_anchor", "anchor retention", f"v{lo}-{hi}", settings, rows, time.time() - t0)


def bench_freeinit(toy: Toy, a, settings, out) -> None:
    spec = []
    for name, (iters, c2f) in FREEINIT_ROWS.items():
        if a.rows and name not in a.rows:
            continue
        model = call("TFVFreeInitModelPatch", model=zs2_model(toy, 0.98, 0.01), iterations=iters,
                     coarse_to_fine=c2f)[0]
        spec.append((name, lambda label, seed, model=model: toy.sample(model, label, seed, a.steps, a.cfg,
                                                                       empty_video(a)),
                     {"iterations": iters, "coarse_to_fine": c2f, "video_model": "ZS^2 (TMA 0.98 + DN 0.01)"}))
    if spec:
        run_videos(toy, a, settings, out, "freeinit", spec)
    for name in FREEINIT_PICTURE_ROWS:
        if a.rows and name not in a.rows:
            continue
        model = toy.model if "plain" in name else call("TFVFreeInitModelPatch", model=toy.model, iterations=3)[0]
        t0 = time.time()
        rows = []
        for i in range(a.freeinit_pictures):
            label, seed = i % W.N_CLASSES, a.seed + i
            img = toy.decode(toy.sample(model, [label], seed, a.steps, 7.5))
            rows.append(dict(method=name, cfg=7.5, w1="", seed=seed, index=0, **M.picture_rows(img, [label])[0]))
        write_part(out, "freeinit", name, f"p0-{a.freeinit_pictures}", settings, rows, time.time() - t0)


# ------------------------------------------------------------------------------------ main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="judge,smoothinit,zs2,i4vgen,i4vgen_anchor,freeinit")
    ap.add_argument("--rows", default="", help="';'-separated row names to run (default: all rows of the tables)")
    ap.add_argument("--n", type=int, default=600, help="SmoothInit pictures per cell (multiple of --batch)")
    ap.add_argument("--batch", type=int, default=60, help="SmoothInit pictures per KSampler call (multiple of 12)")
    ap.add_argument("--chunks", default="", help="'lo:hi': only picture batches / videos lo..hi-1 (a part)")
    ap.add_argument("--cfgs", default="7.5", help="SmoothInit sampling CFGs")
    ap.add_argument("--w1", type=float, default=0.0, help="SmoothInit node cfg (w1); 0 = follow the sampler's CFG")
    ap.add_argument("--videos", type=int, default=48, help="videos per video row")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="DDIM steps of every sampler")
    ap.add_argument("--nivsds-steps", type=int, default=25,
                    help="NI-VSDS Animate's own DDIM schedule (the node's default and the paper's 25 steps; its "
                         "step sizes 10,10,10,1 overshoot on a 10-step schedule, see README)")
    ap.add_argument("--cfg", type=float, default=7.5, help="video CFG")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judge-n", type=int, default=600, help="pictures per kind in the judge check")
    ap.add_argument("--freeinit-pictures", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()
    a.rows = [r for r in a.rows.split(";") if r]
    out = Path(a.out)
    torch.set_num_threads(a.threads)
    from comfy_harness import boot
    boot()
    toy = Toy()
    _CPU["last"] = time.process_time()
    t_all = time.time()
    for table in a.tables.split(","):
        settings = common_settings(a, table)
        fn = {"judge": bench_judge, "smoothinit": bench_smoothinit, "zs2": bench_zs2, "i4vgen": bench_i4vgen,
              "freeinit": bench_freeinit, "i4vgen_anchor": bench_i4vgen_anchor}.get(table)
        if fn is None:
            raise SystemExit(f"unknown table {table!r}")
        fn(toy, a, settings, out)
    print(f"(tables {a.tables}: {time.time() - t_all:.0f}s wall)")


if __name__ == "__main__":
    main()

"""Benchmark: the papers' claims measured on a small text-to-image model that has learned something.

The toy world (``benchmarks/toy_world``): 64x64 pictures of one coloured shape, captions
"a <colour> <shape>", a one-level SD1.5-format UNet + TAESD + CLIP-L (random, fixed) trained here
(``python -m benchmarks.toy_world.build``, cached outside the repository) and a judge that reads
colour, shape and position from decoded pictures. Every run goes through the real ComfyUI, with the
shipped node classes as ComfyUI loads them: CheckpointLoaderSimple -> CLIPTextEncode -> the pack's
nodes -> KSampler -> VAEDecode. Same seeds across the rows of a table.

Tables (markdown, printed and written to ``<out>/tables.md``, raw numbers to ``<out>/results_*.json``,
decoded pictures to ``<out>/pictures_*.pt`` for ``make_pictures.py``):

1. SmoothInit (paper Table 1's direction): prompt accuracy and a Frechet distance between judge
   features of generated and real pictures, plain vs Forward-Inversion vs SmoothInit-30 vs
   Fast-SmoothInit-10/30, at a low sampling CFG and at 7.5 (the noise optimisers use w1 = 7.5, w2 = 1).
   The images of a row are one batch with one prompt per image (a batched CONDITIONING).
2. ZS^2 (Sec. 5): 8-frame videos (frames = the batch); per-frame prompt accuracy, share of adjacent
   frame pairs judged the same class, mean centroid jump between adjacent frames (pixels); rows:
   independent frames, Dependency Noise (KSampler) alone, Temporal Momentum Attention alone, both,
   a momentum sweep and a kl_lambda sweep.
3. I4VGen: the same video metrics for anchor (KSampler) -> Static Video From Latent -> NI-VSDS
   Animate -> KSampler regeneration on the ZS^2-made video model vs ZS^2 sampling alone.

Usage::

    python benchmarks/bench_toy_world.py                       # all three tables
    python benchmarks/bench_toy_world.py --tables smoothinit --per-class 4
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

from benchmarks.toy_world import build as B  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402

SAMPLER, SCHEDULER = "ddim", "ddim_uniform"


# ------------------------------------------------------------------------------------ helpers
def node(name: str):
    import nodes
    return nodes.NODE_CLASS_MAPPINGS[name]()


def call(name: str, **kwargs):
    """Call a node class from ComfyUI's registry with its declared defaults for inputs not given, under
    ``torch.inference_mode`` as ComfyUI's executor does."""
    inst = node(name)
    spec = type(inst).INPUT_TYPES()
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


def features(images: torch.Tensor) -> torch.Tensor:
    """Judge features per picture: mean foreground RGB, sqrt(area), fill ratio proxy, centroid."""
    v = W.judge(images)
    dist = (images - W.BACKGROUND[None, :, None, None]).abs().amax(1)
    m = (dist > W.FG_THRESHOLD).float()
    area = m.flatten(1).sum(1).clamp(min=1)
    rgb = (images * m[:, None]).flatten(2).sum(2) / area[:, None]
    cx = torch.nan_to_num(v.cx, 32.0) / 64
    cy = torch.nan_to_num(v.cy, 32.0) / 64
    return torch.cat([rgb, (area.sqrt() / 64)[:, None], cx[:, None], cy[:, None]], 1).double()


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    e1, v1 = torch.linalg.eigh(s1)
    r1 = v1 @ torch.diag(e1.clamp(min=0).sqrt()) @ v1.T
    m = r1 @ s2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


_REAL = {}


def real_features() -> torch.Tensor:
    if "f" not in _REAL:
        g = torch.Generator().manual_seed(555)
        _REAL["f"] = torch.cat([features(W.sample(200, g).images) for _ in range(10)])
    return _REAL["f"]


def fmt(x, pct=False):
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    return f"{100 * x:.1f} %" if pct else f"{x:.2f}"


# ------------------------------------------------------------------------------------ SmoothInit
SI_ROWS = [("plain", None), ("Forward-Inversion", "Forward-Inversion"), ("SmoothInit-30", "SmoothInit-30"),
           ("Fast-SmoothInit-10", "Fast-SmoothInit-10"), ("Fast-SmoothInit-30", "Fast-SmoothInit-30")]


def bench_smoothinit(toy: Toy, per_class: int, cfgs, methods, steps: int, seed: int, pics: dict) -> list:
    labels = torch.arange(W.N_CLASSES).repeat(per_class)        # class k at positions k, k+12, ...
    n = len(labels)
    pos, neg = toy.batched(labels), toy.negative_batch(n)
    rows = []
    for cfg in cfgs:
        for name, method in SI_ROWS:
            if name not in methods:
                continue
            model = toy.model if method is None else call("SmoothInitModelPatch", model=toy.model, method=method)[0]
            t0 = time.time()
            lat = call("EmptyLatentImage", width=64, height=64, batch_size=n)[0]
            out = call("KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=SAMPLER,
                       scheduler=SCHEDULER, positive=pos, negative=neg, latent_image=lat, denoise=1.0)[0]
            img = toy.decode(out)
            v = W.judge(img)
            acc = float((v.labels == labels).float().mean())
            fd = frechet(features(img), real_features())
            rows.append({"cfg": cfg, "method": name, "accuracy": acc, "fd": fd, "n": n,
                         "colour_acc": float((v.colour == labels // 3).float().mean()),
                         "shape_acc": float((v.shape == labels % 3).float().mean()), "wall_s": time.time() - t0})
            pics[f"smoothinit/cfg{cfg}/{name}"] = img[:W.N_CLASSES].half()
            print(f"  SmoothInit cfg {cfg} {name}: acc {acc:.3f} FD {fd:.4f} ({time.time() - t0:.0f}s)", flush=True)
    return rows


def table_smoothinit(rows, per_class, steps) -> str:
    cfgs = sorted({r["cfg"] for r in rows})
    head = "| method | " + " | ".join(f"accuracy @ CFG {c} | FD @ CFG {c}" for c in cfgs) + " |"
    lines = [head, "|---|" + "---|---|" * len(cfgs)]
    for name, _ in SI_ROWS:
        cells = []
        for c in cfgs:
            r = next((r for r in rows if r["cfg"] == c and r["method"] == name), None)
            cells += [fmt(r["accuracy"], True), f"{r['fd']:.4f}"] if r else ["-", "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = rows[0]["n"]
    return (f"**SmoothInit** ({n} pictures per cell = {per_class} per class, DDIM {steps}, same seed; "
            f"noise optimisers at w1 = 7.5, w2 = 1; FD: Frechet distance of judge features to 2000 real "
            f"pictures, lower is better)\n\n" + "\n".join(lines))


# ------------------------------------------------------------------------------------ videos
def video_metrics(frames_img: torch.Tensor, label: int) -> dict:
    v = W.judge(frames_img)
    same = (v.labels[1:] == v.labels[:-1]) & (v.labels[1:] >= 0)
    jump = ((v.cx[1:] - v.cx[:-1]) ** 2 + (v.cy[1:] - v.cy[:-1]) ** 2).sqrt()
    return {"acc": float((v.labels == label).float().mean()), "same": float(same.float().mean()),
            "jump_sum": float(jump.nansum()), "jump_n": int((~jump.isnan()).sum())}


def aggregate(ms: list) -> dict:
    jn = sum(m["jump_n"] for m in ms)
    return {"accuracy": sum(m["acc"] for m in ms) / len(ms), "same_class": sum(m["same"] for m in ms) / len(ms),
            "jump_px": sum(m["jump_sum"] for m in ms) / jn if jn else float("nan"), "videos": len(ms)}


def zs2_model(toy: Toy, mu, kl_lambda):
    m = toy.model
    if mu is not None:
        m = call("TemporalMomentumAttention", model=m, momentum=mu)[0]
    if kl_lambda is not None:
        m = call("DependencyNoiseModelPatch", model=m, kl_lambda=kl_lambda)[0]
    return m


def sample_videos(toy: Toy, model, videos: list, frames: int, steps: int, cfg: float, tag: str, pics: dict) -> list:
    ms = []
    for j, (label, seed) in enumerate(videos):
        lat = call("EmptyLatentImage", width=64, height=64, batch_size=frames)[0]
        out = call("KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=SAMPLER,
                   scheduler=SCHEDULER, positive=toy.cond[label], negative=toy.negative, latent_image=lat,
                   denoise=1.0)[0]
        img = toy.decode(out)
        ms.append(video_metrics(img, label))
        pics[f"{tag}/{label}"] = img.half()
    return ms


ZS2_ROWS = [  # (name, group, mu, kl_lambda)
    ("independent frames", "ablation", None, None),
    ("Dependency Noise alone (lambda 0.01)", "ablation", None, 0.01),
    ("TMA alone (mu 0.98)", "ablation", 0.98, None),
    ("both (ZS^2: mu 0.98, lambda 0.01)", "ablation", 0.98, 0.01),
    ("mu 0 + DN", "mu", 0.0, 0.01), ("mu 0.5 + DN", "mu", 0.5, 0.01), ("mu 0.9 + DN", "mu", 0.9, 0.01),
    ("mu 0.98 + DN", "mu", 0.98, 0.01), ("mu 1 + DN", "mu", 1.0, 0.01),
    ("lambda 0.01 + TMA", "lambda", 0.98, 0.01), ("lambda 0.1 + TMA", "lambda", 0.98, 0.1),
    ("lambda 1 + TMA", "lambda", 0.98, 1.0),
]


VIDEO_ORDER = (0, 4, 8, 9, 1, 5, 2, 6, 10, 3, 7, 11)  # every 3 consecutive: 3 colours, 3 shapes


ZS2_ALIASES = {"mu 0 + DN": "Dependency Noise alone (lambda 0.01)", "mu 0.98 + DN": "both (ZS^2: mu 0.98, lambda 0.01)",
               "lambda 0.01 + TMA": "both (ZS^2: mu 0.98, lambda 0.01)"}


def video_list(n: int, seed: int) -> list:
    """``n`` (prompt, seed) pairs: prompts in VIDEO_ORDER (repeating with new seeds past 12)."""
    return [(VIDEO_ORDER[i % 12], seed + 1000 * (i // 12) + VIDEO_ORDER[i % 12]) for i in range(n)]


def bench_zs2(toy, n_videos, frames, steps, cfg, seed, pics, only=None, on_row=None) -> list:
    """ZS^2 rows (``only``: names of ZS2_ROWS to run, None = all); ``on_row(rows)`` after each row."""
    videos = video_list(n_videos, seed)
    done, rows = {}, []
    for name, group, mu, lam in ZS2_ROWS:
        if only is not None and name not in only:
            continue
        key = (None if mu == 0.0 else mu, lam)  # TMA at mu 0 is plain self-attention
        t0 = time.time()
        if key not in done:
            tag = f"zs2/mu{mu}/lam{lam}"
            done[key] = aggregate(sample_videos(toy, zs2_model(toy, mu, lam), videos, frames, steps, cfg, tag, pics))
            print(f"  ZS2 {name}: {done[key]} ({time.time() - t0:.0f}s)", flush=True)
        rows.append(dict(done[key], method=name, group=group, mu=mu, kl_lambda=lam))
        if on_row is not None:
            on_row(rows)
    return rows


def table_videos(rows, title: str, groups=None) -> str:
    lines = ["| method | per-frame prompt accuracy | adjacent pairs same class | mean centroid jump (px) |",
             "|---|---|---|---|"]
    for r in rows:
        if groups and r.get("group") not in groups:
            continue
        lines.append(f"| {r['method']} | {fmt(r['accuracy'], True)} | {fmt(r['same_class'], True)} | "
                     f"{fmt(r['jump_px'])} |")
    return title + "\n\n" + "\n".join(lines)


# ------------------------------------------------------------------------------------ I4VGen
I4VGEN_REF = "ZS^2 sampling alone (mu 0.98, lambda 0.01)"


def bench_i4vgen(toy, n_videos, frames, steps, cfg, seed, pics, with_ref: bool = True) -> list:
    """I4VGen rows; ``with_ref``: also sample the ZS^2 reference (else the report takes the ZS^2
    table's identical row: same model, prompts and seeds)."""
    videos = video_list(n_videos, seed)
    video_model = zs2_model(toy, 0.98, 0.01)
    rows = []
    if with_ref:
        t0 = time.time()
        ref = aggregate(sample_videos(toy, video_model, videos, frames, steps, cfg, "zs2/mu0.98/lam0.01", pics))
        rows.append(dict(ref, method=I4VGEN_REF))
        print(f"  I4VGen reference ZS^2: {ref} ({time.time() - t0:.0f}s)", flush=True)
    variants = [("static anchor video (no animation)", None), ("I4VGen, p_re 1.0", 1.0), ("I4VGen, p_re 0.8", 0.8)]
    anchors = {}
    for name, p_re in variants:
        t0 = time.time()
        ms = []
        for j, (label, s) in enumerate(videos):
            if (label, s) not in anchors:  # anchor: one image from the image model (same model, plain)
                lat = call("EmptyLatentImage", width=64, height=64, batch_size=1)[0]
                anchors[(label, s)] = call("KSampler", model=toy.model, seed=s, steps=steps, cfg=cfg,
                                           sampler_name=SAMPLER, scheduler=SCHEDULER, positive=toy.cond[label],
                                           negative=toy.negative, latent_image=lat, denoise=1.0)[0]
            static = call("I4VGenStaticVideoFromLatent", samples=anchors[(label, s)], frames=frames,
                          model=video_model)[0]
            if p_re is None:
                out = static
            else:
                animated = call("NIVSDSAnimate", model=video_model, positive=toy.cond[label], negative=toy.negative,
                                latent_image=static, seed=s + 7, steps=steps, cfg=cfg, scheduler=SCHEDULER)[0]
                out = call("KSampler", model=video_model, seed=s + 13, steps=steps, cfg=cfg, sampler_name=SAMPLER,
                           scheduler=SCHEDULER, positive=toy.cond[label], negative=toy.negative,
                           latent_image=animated, denoise=p_re)[0]
            img = toy.decode(out)
            ms.append(video_metrics(img, label))
            pics[f"i4vgen/{name}/{label}"] = img.half()
        r = dict(aggregate(ms), method=name)
        rows.append(r)
        print(f"  I4VGen {name}: {r} ({time.time() - t0:.0f}s)", flush=True)
    return rows


# ------------------------------------------------------------------------------------ main
CLAIMS = {
    "smoothinit": ("Paper (Table 1): SmoothInit / Fast-SmoothInit noise raises prompt alignment and quality "
                   "over plain Gaussian noise, most at low CFG; Forward-Inversion alone helps less."),
    "zs2": ("Paper (Sec. 5, Table 3 ablation): Dependency Noise and TMA each make frames more consistent, both "
            "together most; mu near 1 gives consistency, mu = 1 (cross-frame attention to frame 1) loses motion; "
            "small lambda = strongly correlated noise."),
    "i4vgen": ("Paper (Tables 1-3): I4VGen (anchor -> static video -> NI-VSDS -> regeneration) improves "
               "text alignment and temporal quality over sampling the video model directly."),
}


def report(out: Path) -> str:
    """Merge every ``results_*.json`` in ``out`` into the markdown tables."""
    results = {}
    for f in sorted(out.glob("results_*.json")):
        for table, r in json.loads(f.read_text()).items():
            if table in results:
                results[table]["rows"] += r["rows"]
            else:
                results[table] = r
    md = []
    if "smoothinit" in results:
        r = results["smoothinit"]
        md.append(CLAIMS["smoothinit"] + "\n\n" + table_smoothinit(r["rows"], r["per_class"], r["steps"]))
    if "zs2" in results:
        r = results["zs2"]
        by_name = {x["method"]: x for x in r["rows"]}
        for alias, same in ZS2_ALIASES.items():  # identical runs (same model patches, seeds)
            if alias not in by_name and same in by_name:
                by_name[alias] = dict(by_name[same], method=alias, group=alias.split()[0])
        r["rows"] = [by_name[n] for n, *_ in ZS2_ROWS if n in by_name]
        head = (f"**ZS^2** ({r['rows'][0]['videos']} videos of {r['frames']} frames per row, one per prompt, DDIM "
                f"{r['steps']}, CFG {r['cfg']}, same seeds)")
        md.append(CLAIMS["zs2"] + "\n\n" + table_videos(r["rows"], head + ", ablation", {"ablation"}) + "\n\n"
                  + table_videos(r["rows"], "Momentum sweep (Dependency Noise lambda 0.01 on)", {"mu"}) + "\n\n"
                  + table_videos(r["rows"], "kl_lambda sweep (TMA mu 0.98 on)", {"lambda"}))
    if "i4vgen" in results:
        r = results["i4vgen"]
        if not any(x["method"] == I4VGEN_REF for x in r["rows"]) and "zs2" in results:
            ref = next((x for x in results["zs2"]["rows"] if x["mu"] == 0.98 and x["kl_lambda"] == 0.01), None)
            if ref is not None:
                r["rows"].insert(0, dict(ref, method=I4VGEN_REF))
        head = (f"**I4VGen** on the ZS^2 video model (TMA 0.98 + Dependency Noise 0.01; {r['rows'][0]['videos']} "
                f"videos of {r['frames']} frames, DDIM {r['steps']}, CFG {r['cfg']}; NI-VSDS p 0.6, step sizes "
                f"10,10,10,1; anchor: one KSampler picture of the image model)")
        md.append(CLAIMS["i4vgen"] + "\n\n" + table_videos(r["rows"], head))
    return "\n\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="smoothinit,zs2,i4vgen",
                    help="comma-separated subset of smoothinit, zs2, i4vgen; 'report' only merges results")
    ap.add_argument("--per-class", type=int, default=2, help="SmoothInit pictures per class per cell")
    ap.add_argument("--cfgs", default="2.0,7.5", help="SmoothInit sampling CFGs (low, paper)")
    ap.add_argument("--si-methods", default=",".join(n for n, _ in SI_ROWS))
    ap.add_argument("--videos", type=int, default=6,
                    help="videos per row (one per prompt, prompts in an order covering colours and shapes)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="DDIM steps of every sampler")
    ap.add_argument("--cfg", type=float, default=7.5, help="video CFG")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zs2-rows", default="", help="semicolon-separated ZS^2 row names to run (default all)")
    ap.add_argument("--i4vgen-no-ref", action="store_true",
                    help="I4VGen: take the ZS^2 reference row from the ZS^2 table (same seeds) instead of sampling it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(B.cache_dir() / "bench"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = a.tables.split(",")
    if tables != ["report"]:
        torch.set_num_threads(a.threads)
        from comfy_harness import boot
        boot()
        toy = Toy()
        t_all = time.time()
        for table in tables:
            pics, res = {}, {}
            if table == "smoothinit":
                cfgs = [float(c) for c in a.cfgs.split(",")]
                methods = a.si_methods.split(",")
                tag = "smoothinit_" + "_".join(str(c) for c in cfgs) + "_" + "+".join(m.replace("-", "") for m in methods)
                res["smoothinit"] = {"rows": bench_smoothinit(toy, a.per_class, cfgs, methods, a.steps, a.seed, pics),
                                     "per_class": a.per_class, "steps": a.steps}
            elif table == "zs2":
                only = a.zs2_rows.split(";") if a.zs2_rows else None
                tag = "zs2" if only is None else "zs2_" + str(abs(hash(a.zs2_rows)) % 10 ** 6)
                meta = {"frames": a.frames, "steps": a.steps, "cfg": a.cfg}

                def save(rows, tag=tag, meta=meta, pics=pics):
                    (out / f"results_{tag}.json").write_text(json.dumps({"zs2": dict(meta, rows=rows)}, indent=1))
                    torch.save(pics, out / f"pictures_{tag}.pt")

                res["zs2"] = dict(meta, rows=bench_zs2(toy, a.videos, a.frames, a.steps, a.cfg, a.seed, pics,
                                                       only, save))
            elif table == "i4vgen":
                tag = "i4vgen"
                res["i4vgen"] = {"rows": bench_i4vgen(toy, a.videos, a.frames, a.steps, a.cfg, a.seed, pics,
                                                      with_ref=not a.i4vgen_no_ref),
                                 "frames": a.frames, "steps": a.steps, "cfg": a.cfg}
            else:
                raise SystemExit(f"unknown table {table!r}")
            (out / f"results_{tag}.json").write_text(json.dumps(res, indent=1))
            torch.save(pics, out / f"pictures_{tag}.pt")
        print(f"(tables {a.tables}: {time.time() - t_all:.0f}s wall)")
    text = report(out)
    (out / "tables.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

"""Pictures for the README from the toy-world benchmark's outputs (``bench_toy_world.py``).

    python -m benchmarks.toy_world.make_pictures [--bench DIR] [--out docs/toy_world]

Writes small PNG grids (rows = methods, same seeds; columns = the 12 prompts or the 8 frames) and
animated WEBPs (rows = methods, columns = prompts, animated over the frames) into ``docs/toy_world/``.
Pure torch + Pillow; reads ``<bench>/pictures_*.pt`` (decoded pictures, fp16 [N, 3, 64, 64]).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.toy_world import build as B  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402

LABEL_W = 150
GAP = 2


def _pil(img: torch.Tensor):
    from PIL import Image
    arr = (img.float().clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
    return Image.fromarray(arr)


def grid(rows: list, labels: list, header: list | None = None, tile: int = 64):
    """rows: list of lists of [3, 64, 64] tensors; labels: one text per row; header: per column."""
    from PIL import Image, ImageDraw
    ncol = max(len(r) for r in rows)
    top = 14 if header else 0
    w = LABEL_W + ncol * (tile + GAP)
    h = top + len(rows) * (tile + GAP)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(canvas)
    if header:
        for j, t in enumerate(header):
            d.text((LABEL_W + j * (tile + GAP) + 2, 1), t, fill=(0, 0, 0))
    for i, (row, lab) in enumerate(zip(rows, labels)):
        y = top + i * (tile + GAP)
        d.text((4, y + tile // 2 - 6), lab, fill=(0, 0, 0))
        for j, img in enumerate(row):
            canvas.paste(_pil(img).resize((tile, tile)), (LABEL_W + j * (tile + GAP), y))
    return canvas


def save_webp(frames_rows: list, labels: list, path: Path, header=None, duration: int = 180) -> None:
    """frames_rows[i][j]: [F, 3, 64, 64] video of row i, column j -> animated WEBP over F."""
    n_frames = frames_rows[0][0].shape[0]
    imgs = [grid([[v[f] for v in row] for row in frames_rows], labels, header) for f in range(n_frames)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=duration, loop=0, quality=80)


def short(k: int) -> str:
    return W.caption(k)[2:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=str(B.cache_dir() / "bench"))
    ap.add_argument("--out", default=str(REPO / "docs" / "toy_world"))
    a = ap.parse_args()
    pics = {}
    for f in sorted(Path(a.bench).glob("pictures_*.pt")):
        pics.update(torch.load(f))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    classes = list(range(W.N_CLASSES))
    # data vs model
    real = W.sample(W.N_CLASSES, torch.Generator().manual_seed(3), labels=torch.arange(W.N_CLASSES)).images
    si_keys = sorted({k.split("/")[1] for k in pics if k.startswith("smoothinit/")})
    if si_keys:
        hi = max(si_keys, key=lambda s: float(s[3:]))
        rows = [list(real), list(pics[f"smoothinit/{hi}/plain"].float())]
        g = grid(rows, ["training data", f"model, CFG {hi[3:]}"], [short(k)[:9] for k in classes])
        g.save(out / "model.png")
        written.append("model.png")
        for c in si_keys:
            names = ["plain", "Forward-Inversion", "SmoothInit-30", "Fast-SmoothInit-10", "Fast-SmoothInit-30"]
            rows = [list(pics[f"smoothinit/{c}/{n}"].float()) for n in names if f"smoothinit/{c}/{n}" in pics]
            g = grid(rows, [n for n in names if f"smoothinit/{c}/{n}" in pics], [short(k)[:9] for k in classes])
            name = f"smoothinit_cfg{c[3:]}.png"
            g.save(out / name)
            written.append(name)
    # ZS^2: 4 prompts, rows = ablation, animated; plus a frame strip for one prompt
    show = [0, 4, 8, 9]  # the first videos of bench_toy_world.VIDEO_ORDER
    zs2_rows = [("independent", "zs2/independent frames"), ("Dependency Noise", "zs2/Dependency Noise alone (lambda 0.01)"),
                ("TMA", "zs2/TMA alone (mu 0.98)"), ("DN + TMA (ZS^2)", "zs2/ZS^2: TMA mu 0.98 + DN lambda 0.01"),
                ("DN + TMA mu 1", "zs2/mu 1 + DN 0.01")]
    zs2_rows = [(n, t) for n, t in zs2_rows if f"{t}/0" in pics]
    if zs2_rows:
        save_webp([[pics[f"{t}/{k}"].float() for k in show] for _, t in zs2_rows], [n for n, _ in zs2_rows],
                  out / "zs2.webp", [short(k) for k in show])
        written.append("zs2.webp")
        g = grid([list(pics[f"{t}/{show[0]}"].float()) for _, t in zs2_rows], [n for n, _ in zs2_rows],
                 [f"frame {f + 1}" for f in range(pics[f"{zs2_rows[0][1]}/0"].shape[0])])
        g.save(out / "zs2_frames.png")
        written.append("zs2_frames.png")
    i4_rows = [("ZS^2 alone", "zs2/ZS^2: TMA mu 0.98 + DN lambda 0.01"),
               ("static anchor", "i4vgen/static anchor video (no animation)"),
               ("no NI-VSDS", "i4vgen/regeneration without NI-VSDS (p_re 0.8)"),
               ("I4VGen p_re 0.8", "i4vgen/I4VGen p_re 0.8"),
               ("best-of-4 anchor", "i4vgen/I4VGen p_re 0.8, anchor by judge score (best of 4)")]
    i4_rows = [(n, t) for n, t in i4_rows if f"{t}/0" in pics]
    if len(i4_rows) > 1:
        save_webp([[pics[f"{t}/{k}"].float() for k in show] for _, t in i4_rows], [n for n, _ in i4_rows],
                  out / "i4vgen.webp", [short(k) for k in show])
        written.append("i4vgen.webp")
        g = grid([list(pics[f"{t}/{show[0]}"].float()) for _, t in i4_rows], [n for n, _ in i4_rows],
                 [f"frame {f + 1}" for f in range(pics[f"{i4_rows[0][1]}/0"].shape[0])])
        g.save(out / "i4vgen_frames.png")
        written.append("i4vgen_frames.png")
    for n in written:
        print(out / n, (out / n).stat().st_size, "bytes")


if __name__ == "__main__":
    main()

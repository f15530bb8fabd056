#!/usr/bin/env python
"""Write the template-browser thumbnail ``workflows/<name>.jpg`` of every shipped workflow: a card that
says, at the size the browser shows it, what the workflow gives.

ComfyUI's template browser (Workflow -> Browse Templates -> Custom Nodes -> this pack) lists each
``workflows/<name>.json`` (server route ``GET /workflow_templates``) and shows the image
``/api/workflow_templates/<pack folder>/<name>.jpg`` next to it: the frontend (1.27 with ComfyUI
0.3.64, 1.49 with 0.33.0) hard-codes ``mediaSubtype: "jpg"`` for custom-node templates, with no
``-1`` index suffix (that suffix is for core templates only), and the server serves the pack's
``workflows/`` folder as static files. So the thumbnail is a JPEG of the same name.

Each card (CARD_SIZE, Pillow, a TrueType font: DejaVu Sans when installed, else Pillow's bundled
font) shows, from one row of ``CARDS``:

* the model family (coloured band) and the method;
* the cost in model calls of the workflow as shipped against the stock graph without the method (same
  model, steps and CFG; a CFG step is 2 calls), as two bars;
* where the toy world has one, a before/after of the toy model with the same seed: tiles cut from the
  committed pictures of ``docs/toy_world/`` (``benchmarks/toy_world/make_pictures.py`` grids; rows are
  methods with the same seeds), else the row's one-line summary.

A new workflow needs one row in ``CARDS`` (``main`` refuses a workflow without one).

    python scripts/make_thumbnails.py                          # every workflow (no ComfyUI needed)
    python scripts/make_thumbnails.py wan22_t2v_freeinit       # only these
    python scripts/make_thumbnails.py --browse /tmp/tfv_browse # + screenshot of the template browser

``--browse DIR`` starts the ComfyUI at ``--comfyui`` (``main.py --cpu``, a temporary
``--base-directory``), opens Browse Templates in headless Chromium, selects this pack's section and saves
``DIR/template_browser_<ComfyUI version>.png``; exit status 1 when a listed workflow's thumbnail was not
fetched.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from chromium_cdp import Browser, default_chromium  # noqa: E402
from e2e_server_run import LINK_NAME, comfyui_path, comfyui_server, free_port, http  # noqa: E402

WORKFLOWS = REPO / "workflows"
TOY_PICTURES = REPO / "docs" / "toy_world"
THUMB_EXT = ".jpg"          # what both frontends request for custom-node templates
CARD_SIZE = (640, 480)
JPEG_QUALITY = 88


# ----------------------------------------------------------------------------------------------
# the cards: one row per workflow

@dataclass(frozen=True)
class Toy:
    """A before/after from a ``docs/toy_world`` grid: rows ``before`` and ``after`` (same seeds), the
    tiles of ``cols`` (frames of one video, or prompts); ``labels`` name the two rows on the card."""
    picture: str
    before: int
    after: int
    cols: tuple
    labels: tuple
    what: str                # what the tiles are


ZS2_TOY = Toy("zs2_frames.png", 0, 3, (0, 2, 4, 6), ("without", "with ZS^2"), "frames 1, 3, 5, 7 of one video")
SMOOTH_TOY = Toy("smoothinit_cfg7.5.png", 0, 3, (0, 3, 6, 9), ("without", "with FSI-10"),
                 "4 prompts, CFG 7.5 (FSI: Fast-SmoothInit)")
I4V_TOY = Toy("i4vgen_frames.png", 0, 3, (0, 2, 4, 6), ("ZS^2 only", "with I4VGen"), "frames 1, 3, 5, 7 of one video")


@dataclass(frozen=True)
class Card:
    family: str              # model family (band colour: FAMILY_COLOURS)
    method: str
    calls: int               # model calls of the shipped workflow (per video)
    stock: int               # the same graph without the method
    note: str                # what the cost counts / what it gives, one short line
    toy: Toy | None = None


CARDS = {
    "zs2_text_to_video_sd15": Card("SD1.5", "ZS^2 text-to-video", 100, 100, "TMA + Dependency Noise: no extra calls",
                                   ZS2_TOY),
    "zs2_long_video_sd15": Card("SD1.5", "ZS^2 long video, 64 frames", 900, 800,
                                "9 chunks of 8 frames: 72 frame-evaluations/step vs 64", ZS2_TOY),
    "zs2_controlnet_sd15": Card("SD1.5", "ZS^2 + ControlNet", 100, 100, "one control image per frame", ZS2_TOY),
    "zs2_lora_sd15": Card("SD1.5", "ZS^2 + your LoRA", 100, 100, "any SD1.5 LoRA (placeholder name)", ZS2_TOY),
    "zs2_video_edit_ip2p_sd15": Card("SD1.5 IP2P", "ZS^2 video editing", 60, 60,
                                     "InstructPix2Pix edits 8 frames as one video", ZS2_TOY),
    "zs2_text_to_video_flux": Card("Flux.1 dev", "ZS^2 text-to-video", 20, 20, "TMA + Dependency Noise, CFG 1",
                                   ZS2_TOY),
    "zs2_fast_smoothinit_sd15": Card("SD1.5", "ZS^2 + Fast-SmoothInit", 130, 100,
                                     "30 calls for the optimised noise", SMOOTH_TOY),
    "zs2_freeinit_sd15": Card("SD1.5", "ZS^2 + FreeInit", 300, 100, "3 passes, low frequencies kept"),
    "smoothinit_t2i_sd15": Card("SD1.5", "Fast-SmoothInit image", 130, 100, "30 calls for the optimised noise",
                                SMOOTH_TOY),
    "smoothinit_animatediff_sd15": Card("SD1.5 AnimateDiff", "Fast-SmoothInit video", 130, 100,
                                        "30 calls for the optimised noise", SMOOTH_TOY),
    "wan_t2v_fast_smoothinit": Card("Wan 2.1 1.3B", "Fast-SmoothInit", 90, 60, "30 calls, DiT-safe preset",
                                    SMOOTH_TOY),
    "wan22_t2v_smoothinit": Card("Wan 2.2 14B", "Fast-SmoothInit", 70, 40, "30 calls on the high-noise expert",
                                 SMOOTH_TOY),
    "wan_t2v_freeinit": Card("Wan 2.1 1.3B", "FreeInit", 180, 60, "3 passes (coarse-to-fine: 2x)"),
    "wan22_t2v_freeinit": Card("Wan 2.2 14B", "FreeInit, two experts", 120, 40, "3 passes over both experts"),
    "wan22_5b_t2v_freeinit": Card("Wan 2.2 5B", "FreeInit", 78, 40, "3 passes, coarse-to-fine"),
    "i4vgen_wan": Card("Wan 2.1 1.3B", "I4VGen", 98, 60, "NI-VSDS 38 + regeneration 60; + 60 one-frame anchor",
                       I4V_TOY),
    "wan22_5b_i4vgen": Card("Wan 2.2 5B", "I4VGen", 66, 40, "NI-VSDS 26 + regeneration 40; + 40 one-frame anchor",
                            I4V_TOY),
    "i4vgen_animatediff_sd15": Card("SD1.5 AnimateDiff", "I4VGen", 82, 50,
                                    "NI-VSDS 32 + regeneration 50; + 50 for 4 anchors", I4V_TOY),
    # twins of the stock templates (scripts/build_template_twins.py; ComfyUI 0.33.0): the stock graph + one switch
    "template_wan22_14b_t2v_freeinit": Card("Wan 2.2 14B", "Stock T2V + FreeInit (A/B)", 120, 40,
                                            "the stock template, one switch; Lightning: 12 vs 4"),
    "template_wan22_14b_i2v_freeinit": Card("Wan 2.2 14B", "Stock I2V + FreeInit (A/B)", 120, 40,
                                            "the stock template, one switch; Lightning: 12 vs 4"),
    "template_wan22_5b_ti2v_freeinit": Card("Wan 2.2 5B", "Stock TI2V + FreeInit (A/B)", 120, 40,
                                            "the stock template, one switch"),
    "template_minimax_h3_i2v_freeinit": Card("MiniMax H3", "Stock I2V + FreeInit (A/B)", 60, 20,
                                             "video + audio; 3 passes; Lightning: 24 vs 8"),
    "template_minimax_h3_r2v_freeinit": Card("MiniMax H3", "Stock R2V + FreeInit (A/B)", 60, 20,
                                             "video + audio; 3 passes; Lightning: 12 vs 4"),
    "template_minimax_h3_t2v_freeinit": Card("MiniMax H3", "Stock T2V + FreeInit (A/B)", 60, 20,
                                             "video + audio; 3 passes; Lightning: 24 vs 8"),
    "template_ltx23_t2v_freeinit": Card("LTX-2.3", "Stock T2V + FreeInit (A/B)", 27, 11,
                                         "video + audio; base stage 8 -> 24, refine 3"),
    "template_ltx23_i2v_freeinit": Card("LTX-2.3", "Stock I2V + FreeInit (A/B)", 27, 11,
                                         "video + audio; base stage 8 -> 24, refine 3"),
    "template_ltx23_ia2v_freeinit": Card("LTX-2.3", "Stock image+audio to video + FreeInit", 27, 11,
                                          "given audio kept; base 8 -> 24, refine 3"),
    "template_ltx23_id_lora_freeinit": Card("LTX-2.3", "Stock ID LoRA + FreeInit (A/B)", 51, 19,
                                             "reference voice; base 16 -> 48, refine 3"),
    "template_ltx23_flf2v_freeinit": Card("LTX-2.3", "Stock FLF2V + FreeInit (A/B)", 24, 8,
                                           "first/last frames kept; one stage, 3 passes"),
    "template_ltx25_i2v_freeinit": Card("LTX-2.5", "Stock I2V + FreeInit (A/B)", 27, 11,
                                         "video + audio; base stage 8 -> 24, refine 3"),
    "template_ltx25_t2v_freeinit": Card("LTX-2.5", "Stock T2V + FreeInit (A/B)", 27, 11,
                                         "video + audio; base stage 8 -> 24, refine 3"),
    "template_ltx25_flf2v_freeinit": Card("LTX-2.5", "Stock FLF2V + FreeInit (A/B)", 24, 8,
                                           "first/last frames kept; one stage, 3 passes"),
    "template_z_image_turbo_zs2": Card("Z-Image Turbo", "Stock T2I + ZS^2 video (A/B)", 8, 8,
                                       "8 frames = the batch; TMA + Dependency Noise add no calls", ZS2_TOY),
    "template_krea2_turbo_zs2": Card("Krea 2 Turbo", "Stock T2I + ZS^2 video (A/B)", 8, 8,
                                     "8 frames = the batch; TMA + Dependency Noise add no calls", ZS2_TOY),
    "template_flux2_zs2": Card("Flux 2 dev", "Stock edit + ZS^2 video (A/B)", 20, 20,
                               "8 frames = the batch; Turbo LoRA switch: 8 vs 8", ZS2_TOY),
    "template_qwen_image_2512_zs2": Card("Qwen-Image 2512", "Stock T2I + ZS^2 video (A/B)", 100, 100,
                                         "8 frames = the batch; Lightning switch: 4 vs 4", ZS2_TOY),
    "template_krea2_turbo_int8_zs2": Card("Krea 2 Turbo int8", "Stock T2I + ZS^2 video (A/B)", 8, 8,
                                          "8 frames = the batch; TMA + Dependency Noise add no calls", ZS2_TOY),
    "template_z_image_turbo_int8_zs2": Card("Z-Image Turbo int8", "Stock T2I + ZS^2 video (A/B)", 8, 8,
                                            "8 frames = the batch; TMA + Dependency Noise add no calls", ZS2_TOY),
    "template_flux2_t2i_zs2": Card("Flux 2 dev", "Stock T2I + ZS^2 video (A/B)", 20, 20,
                                   "8 frames = the batch; Turbo LoRA switch: 8 vs 8", ZS2_TOY),
    "template_flux2_klein_9b_zs2": Card("Flux 2 klein 9B", "Stock T2I + ZS^2 video (A/B)", 40, 40,
                                        "8 frames = the batch; CFG 5 (cond + uncond) as stock", ZS2_TOY),
    "i4vgen_real_image_sd15": Card("SD1.5", "I4VGen from your image", 82, 50, "NI-VSDS 32 + regeneration 50",
                                   I4V_TOY),
}

FAMILY_COLOURS = {"SD1.5": (46, 94, 170), "Wan": (150, 60, 150), "Flux": (40, 130, 90), "MiniMax": (170, 90, 40),
                  "LTX": (40, 110, 150)}
BG, FG, DIM = (24, 26, 30), (240, 240, 240), (170, 174, 182)
BAR_STOCK, BAR_METHOD = (110, 116, 128), (235, 160, 50)
FONT_FILES = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf")   # found by Pillow in the system font folders


def font(size: int, bold: bool = True):
    """A TrueType font of ``size`` px: DejaVu Sans (bold) when installed, else Pillow's bundled font."""
    from PIL import ImageFont
    for name in (FONT_FILES if bold else FONT_FILES[1:]):
        for path in (name, f"/usr/share/fonts/truetype/dejavu/{name}"):
            with contextlib.suppress(OSError):
                return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _fit(draw, text: str, size: int, width: int, bold: bool = True):
    """The largest font (down to 60 % of ``size``) in which ``text`` fits ``width`` pixels."""
    for s in range(size, int(size * 0.6) - 1, -1):
        f = font(s, bold)
        if draw.textlength(text, font=f) <= width:
            return f
    return font(int(size * 0.6), bold)


def _family_colour(family: str):
    return next((c for k, c in FAMILY_COLOURS.items() if family.startswith(k)), (90, 90, 90))


def toy_tiles(toy: Toy):
    """(before tiles, after tiles): the [64 x 64] PIL tiles of the two rows of the toy picture, cut at
    the positions ``benchmarks/toy_world/make_pictures.grid`` draws them."""
    from PIL import Image
    from benchmarks.toy_world import make_pictures as MP
    im = Image.open(TOY_PICTURES / toy.picture).convert("RGB")
    tile, top = 64, 14      # grid(): 64-px tiles below a 14-px header row

    def cut(row: int, col: int):
        x, y = MP.LABEL_W + col * (tile + MP.GAP), top + row * (tile + MP.GAP)
        return im.crop((x, y, x + tile, y + tile))
    return [cut(toy.before, c) for c in toy.cols], [cut(toy.after, c) for c in toy.cols]


def card(name: str, row: Card):
    """The thumbnail of workflow ``name`` (a PIL image of CARD_SIZE)."""
    from PIL import Image, ImageDraw
    W, H = CARD_SIZE
    img = Image.new("RGB", CARD_SIZE, BG)
    d = ImageDraw.Draw(img)
    pad = 22
    # band: family | method
    d.rectangle((0, 0, W, 64), fill=_family_colour(row.family))
    # right-aligned: the template browser draws its "Node graph" badge over the card's top-left corner
    d.text((W - pad, 32), row.family, font=_fit(d, row.family, 40, W - 2 * pad - 200), fill=FG, anchor="rm")
    method = row.method.replace("^2", "²")
    d.text((pad, 104), method, font=_fit(d, method, 46, W - 2 * pad), fill=FG, anchor="lm")
    y = 140
    if row.toy is not None:
        before, after = toy_tiles(row.toy)
        t, gap, lab_w = 80, 6, 196
        for r, (label, tiles) in enumerate(zip(row.toy.labels, (before, after))):
            label = label.replace("^2", "²")
            yy = y + r * (t + gap)
            d.text((pad, yy + t // 2), label, font=_fit(d, label, 28, lab_w - 8), fill=FG if r else DIM, anchor="lm")
            for j, tl in enumerate(tiles):
                img.paste(tl.resize((t, t), Image.NEAREST), (pad + lab_w + j * (t + gap), yy))
        y += 2 * (t + gap) + 2
        caption = f"toy model, same seed: {row.toy.what}"
        d.text((pad, y + 12), caption, font=_fit(d, caption, 20, W - 2 * pad, bold=False), fill=DIM, anchor="lm")
        y += 34
    else:
        y += 20
        d.text((pad, y + 30), row.note, font=_fit(d, row.note, 30, W - 2 * pad, bold=False), fill=FG, anchor="lm")
        y += 100
    # cost: two bars, model calls of the workflow against stock
    y = max(y, H - 128)
    d.text((pad, y + 14), "model calls", font=font(24), fill=DIM, anchor="lm")
    top = max(row.calls, row.stock)
    bar_x, bar_w, bar_h = pad + 170, W - 2 * pad - 170 - 130, 28
    for k, (label, v, colour) in enumerate((("stock", row.stock, BAR_STOCK), ("this", row.calls, BAR_METHOD))):
        yy = y + 34 + k * (bar_h + 8)
        d.text((pad, yy + bar_h // 2), label, font=font(26), fill=FG if k else DIM, anchor="lm")
        d.rectangle((bar_x, yy, bar_x + max(4, round(bar_w * v / top)), yy + bar_h), fill=colour)
        d.text((bar_x + bar_w + 10, yy + bar_h // 2), f"{v}", font=font(28), fill=FG, anchor="lm")
    ratio = row.calls / row.stock
    d.text((W - pad, y + 14), "same" if ratio == 1 else f"x{ratio:.2f}".rstrip("0").rstrip("."), font=font(28),
           fill=BAR_METHOD if ratio > 1 else FG, anchor="rm")
    if row.toy is not None:   # the note goes under the bars when the picture took the middle
        d.text((pad, H - 14), row.note, font=_fit(d, row.note, 20, W - 2 * pad, bold=False), fill=DIM, anchor="lm")
    return img


README_PICTURE = REPO / "docs" / "before_after.png"
README_TOY = Toy("zs2_frames.png", 0, 3, tuple(range(8)),
                 ("without", "with ZS²"), "8 frames, same seeds")


def readme_picture(toy: Toy = README_TOY, scale: int = 2):
    """The README's first picture: the two rows of ``toy`` (every column), ``scale`` x nearest, labelled."""
    from PIL import Image, ImageDraw
    before, after = toy_tiles(toy)
    t, gap, lab_w, pad = 64 * scale, 4, 170, 10
    img = Image.new("RGB", (lab_w + len(before) * (t + gap) + pad, 2 * (t + gap) + 2 * pad), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for r, (label, tiles) in enumerate(zip(toy.labels, (before, after))):
        y = pad + r * (t + gap)
        d.text((pad, y + t // 2), label, font=_fit(d, label, 28, lab_w - 2 * pad), fill=(20, 20, 20), anchor="lm")
        for j, tl in enumerate(tiles):
            img.paste(tl.resize((t, t), Image.NEAREST), (lab_w + j * (t + gap), y))
    return img


def thumbnail_path(workflow: Path) -> Path:
    return workflow.with_suffix(THUMB_EXT)


def save_jpeg(img, path: Path) -> int:
    img.convert("RGB").save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return path.stat().st_size


# ----------------------------------------------------------------------------------------------
# the server (--browse; test_packaging)

# Model files a graph names, by loader node and widget position -> models/ subfolder. For a graph
# screenshot the server lists EMPTY files of these names so the frontend does not mark the loaders
# as missing models (nothing loads them: graph workflows are never run here).
MODEL_WIDGETS = {
    "CheckpointLoaderSimple": {0: "checkpoints"}, "LoraLoader": {0: "loras"},
    "ControlNetLoader": {0: "controlnet"}, "UNETLoader": {0: "diffusion_models"},
    "CLIPLoader": {0: "text_encoders"}, "DualCLIPLoader": {0: "text_encoders", 1: "text_encoders"},
    "VAELoader": {0: "vae"}, "ADE_LoadAnimateDiffModel": {0: "animatediff_models"},
}


def placeholder_models(files: list[Path], models: Path) -> list[Path]:
    made = []
    for path in files:
        for n in json.loads(path.read_text()).get("nodes", []):
            for i, folder in MODEL_WIDGETS.get(n.get("type"), {}).items():
                name = (n.get("widgets_values") or [None] * (i + 1))[i]
                if isinstance(name, str) and name:
                    f = models / folder / name
                    if not f.exists():
                        f.parent.mkdir(parents=True, exist_ok=True)
                        f.touch()
                        made.append(f)
    return made


def _other_custom_nodes(root: Path):
    for p in sorted((root / "custom_nodes").iterdir()):
        if p.is_dir() and not p.name.startswith((".", "__")) and p.resolve() != REPO:
            yield p


@contextlib.contextmanager
def server(root: Path, toy_ckpt: Path | None, log_path: Path, graph_files=()):
    """``python main.py --cpu`` of the ComfyUI at ``root`` with a temporary ``--base-directory``:
    custom_nodes/ = this repo (as ``LINK_NAME``) + links to ``root``'s other custom nodes,
    models/checkpoints/ = the toy checkpoint (when given) + empty placeholders of the models
    ``graph_files`` name, input/ = workflows/inputs/*. Yields ``(base_url, base_dir)``."""
    base = Path(tempfile.mkdtemp(prefix="tfv_thumbs_base_"))
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / LINK_NAME).symlink_to(REPO, target_is_directory=True)
    for p in _other_custom_nodes(root):
        (base / "custom_nodes" / p.name).symlink_to(p.resolve(), target_is_directory=True)
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "input").mkdir()
    if toy_ckpt is not None:
        (base / "models" / "checkpoints" / toy_ckpt.name).symlink_to(toy_ckpt)
    placeholder_models(list(graph_files), base / "models")
    for f in (WORKFLOWS / "inputs").glob("*"):
        shutil.copy(f, base / "input" / f.name)
    try:
        with comfyui_server(root, free_port(), log_path, ["--base-directory", str(base)]) as (_server, url, _t_up):
            yield url, base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# the template browser (headless Chromium over the DevTools protocol: scripts/chromium_cdp.py)

JS_BROWSE = """(async () => {
  const app = window.comfyAPI.app.app;
  await app.extensionManager.command.execute('Comfy.BrowseTemplates');
  await new Promise(r => setTimeout(r, 3000));
  const want = %s, sleep = ms => new Promise(r => setTimeout(r, ms));
  const els = [...document.querySelectorAll('[role=dialog] *')].filter(e => e.children.length === 0 && e.textContent.trim() === want);
  if (!els.length) return JSON.stringify({clicked: false});
  els[0].click();
  await sleep(3000);
  // scroll every scroll box of the dialog to its end (cards and images load lazily), then back
  const boxes = [...document.querySelectorAll('[role=dialog] *')].filter(e => e.scrollHeight > e.clientHeight + 10 && getComputedStyle(e).overflowY !== 'visible');
  for (const b of boxes) { for (let y = 0; y <= b.scrollHeight; y += b.clientHeight / 2) { b.scrollTop = y; await sleep(500); } }
  await sleep(1500);
  for (const b of boxes) b.scrollTop = 0;
  await sleep(1500);
  return JSON.stringify({clicked: true});
})()"""


# make_thumbnails' Chromium: no first-run / background traffic; Network on for browse()'s responses
CHROMIUM_FLAGS = ("--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def _browser(chromium: str, width: int, height: int) -> Browser:
    return Browser(chromium, width, height, CHROMIUM_FLAGS, network=True)


async def browse(url: str, out: Path, chromium: str, version: str) -> dict:
    async with _browser(chromium, 1600, 1300) as b:
        await b.open(url)
        r = json.loads(await b.eval(JS_BROWSE % json.dumps(LINK_NAME)))
        # the thumbnails the browser fetched (both frontends fetch /api/workflow_templates/<pack>/<name>.jpg)
        prefix = f"/api/workflow_templates/{LINK_NAME}/"
        got = {urllib.parse.unquote(u.split(prefix, 1)[1]): st for u, st in b.responses if prefix in u and u.endswith(THUMB_EXT)}
        r["fetched"] = sorted(k for k, st in got.items() if st == 200)
        r["failed"] = sorted(k for k, st in got.items() if st != 200)
        out.mkdir(parents=True, exist_ok=True)
        shot = out / f"template_browser_{version}.png"
        shot.write_bytes(await b.screenshot())
        r["screenshot"] = str(shot)
        return r



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="workflow names (default: every workflows/*.json)")
    ap.add_argument("--comfyui", type=Path, default=comfyui_path())
    ap.add_argument("--chromium", default=default_chromium())
    ap.add_argument("--browse", type=Path, default=None, help="save a screenshot of the template browser here")
    ap.add_argument("--no-thumbnails", action="store_true", help="only --browse")
    ap.add_argument("--readme-picture", action="store_true",
                    help=f"also write {README_PICTURE.relative_to(REPO)} (the README's toy before/after)")
    a = ap.parse_args(argv)
    if a.readme_picture:
        readme_picture().save(README_PICTURE, optimize=True)
        print(f"wrote {README_PICTURE.relative_to(REPO)}", flush=True)
    files = ([WORKFLOWS / f"{Path(n).stem}.json" for n in a.names] if a.names
             else sorted(WORKFLOWS.glob("*.json")))
    missing = [p.stem for p in files if p.stem not in CARDS]
    if missing:
        print(f"no CARDS row for {missing}: add one (family, method, calls, stock, note, toy)", flush=True)
        return 1
    for path in [] if a.no_thumbnails else files:
        size = save_jpeg(card(path.stem, CARDS[path.stem]), thumbnail_path(path))
        print(f"card   {thumbnail_path(path).name}: {size / 1024:.0f} KB", flush=True)
    if a.browse is None:
        return 0
    log_path = Path(tempfile.gettempdir()) / "tfv_thumbs_server.log"
    with server(a.comfyui.expanduser().resolve(), None, log_path, sorted(WORKFLOWS.glob("*.json"))) as (url, _b):
        version = http(url + "/system_stats")["system"].get("comfyui_version", "unknown")
        r = asyncio.run(browse(url, a.browse, a.chromium, version))
        listed = sorted(http(url + "/workflow_templates").get(LINK_NAME, []))
    shown = sorted(Path(f).stem for f in r.get("fetched", []))
    print(f"template browser (ComfyUI {version}): section clicked {r['clicked']}, {len(shown)} thumbnails "
          f"fetched (HTTP 200) for {len(listed)} workflows listed by the server; not fetched: "
          f"{sorted(set(listed) - set(shown))}, failed: {r.get('failed')}; {r['screenshot']}")
    return 0 if r["clicked"] and shown == listed else 1


if __name__ == "__main__":
    sys.exit(main())

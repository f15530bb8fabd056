#!/usr/bin/env python
"""Write the template-browser thumbnail ``workflows/<name>.jpg`` of every shipped workflow.

ComfyUI's template browser (Workflow -> Browse Templates -> Custom Nodes -> this pack) lists each
``workflows/<name>.json`` (server route ``GET /workflow_templates``) and shows the image
``/api/workflow_templates/<pack folder>/<name>.jpg`` next to it: the frontend (1.27 with ComfyUI
0.3.64, 1.49 with 0.33.0) hard-codes ``mediaSubtype: "jpg"`` for custom-node templates, with no
``-1`` index suffix (that suffix is for core templates only), and the server serves the pack's
``workflows/`` folder as static files. So the thumbnail is a JPEG of the same name.

Two kinds of thumbnail, both made with a real ComfyUI server (``main.py --cpu``) in a temporary
``--base-directory`` (this repo and the ComfyUI's other custom nodes linked into its
``custom_nodes/``; the ComfyUI folder is never written):

* **toy run** (SD1.5 workflows whose nodes all run on the toy-world checkpoint of
  ``benchmarks/toy_world``: CheckpointLoaderSimple, no LoRA / ControlNet / InstructPix2Pix /
  AnimateDiff): the workflow, converted to the API format with the server's ``/object_info``,
  runs with ONLY these changes: the checkpoint -> the toy-world checkpoint, the resolution -> 64 px
  (the toy world's picture size), the positive prompt -> a toy-world caption ("a red circle"), the
  negative prompt -> "", a LoadImage -> a toy-world picture of that caption, and (for CPU time)
  steps capped at 20 and frames at 16 (``--toy-steps`` / ``--toy-frames``, 0 = as shipped). The thumbnail is the
  saved frames (up to 8, evenly spaced) in a grid, upscaled (nearest) to 512 px wide.
* **graph** (every other workflow: Wan, Flux, AnimateDiff-Evolved, ControlNet, InstructPix2Pix,
  LoRA): the graph loaded into the real frontend in headless Chromium (``app.loadGraphData``, as
  scripts/frontend_check.py), fitted to the canvas, screenshotted and scaled to 512 px wide.

    python scripts/make_thumbnails.py                          # all workflows (COMFYUI_PATH server)
    python scripts/make_thumbnails.py wan22_t2v_freeinit       # only these
    python scripts/make_thumbnails.py --browse /tmp/tfv_browse # + screenshot of the template browser

``--browse DIR`` opens Browse Templates, selects this pack's section and saves
``DIR/template_browser_<ComfyUI version>.png``. Needs ``chromium`` (Debian package) for graph
thumbnails and ``--browse``; the toy checkpoint (``python -m benchmarks.toy_world.build``) for toy
runs (without it those workflows fall back to graph thumbnails, with a warning).
Exit status 1 when a workflow failed.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))
import workflow_api as wa  # noqa: E402
from chromium_cdp import Browser, default_chromium  # noqa: E402
from e2e_server_run import LINK_NAME, comfyui_path, comfyui_server, free_port, http  # noqa: E402

WORKFLOWS = REPO / "workflows"
THUMB_EXT = ".jpg"          # what both frontends request for custom-node templates
THUMB_WIDTH = 640
JPEG_QUALITY = 82
TOY_SIZE = 64               # benchmarks/toy_world/world.py SIZE
MAX_FRAMES = 8
# Node types a toy run supports: everything else (LoRA files, ControlNet, InstructPix2Pix,
# AnimateDiff-Evolved, Wan/Flux loaders) needs weights the toy world does not have.
TOY_NODE_TYPES = frozenset({
    "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "KSamplerAdvanced",
    "VAEDecode", "VAEEncode", "SaveAnimatedWEBP", "SaveImage", "PreviewImage", "LoadImage", "ImageScale",
    "RandomNoise", "BasicScheduler", "KSamplerSelect", "CFGGuider", "SamplerCustomAdvanced", "Note",
    "MarkdownNote",
    # the pack
    "DependencyNoise", "DependencyNoiseModelPatch", "TemporalMomentumAttention", "ZS2LongVideo",
    "ForwardInversionNoise", "SmoothInitNoise", "FastSmoothInitNoise", "SmoothInitModelPatch",
    "TFVFreeInitModelPatch", "TFVFreeInitSampler", "I4VGenAnchorSelect", "I4VGenStaticVideoFromLatent",
    "I4VGenStaticVideoFromImage", "NIVSDSAnimate",
})
TOY_CLASS = 0               # world.caption(0) == "a red circle"


def thumbnail_path(workflow: Path) -> Path:
    return workflow.with_suffix(THUMB_EXT)


def fits_toy(workflow: dict) -> bool:
    types = set(wa.node_types(workflow))
    return "CheckpointLoaderSimple" in types and types <= TOY_NODE_TYPES


# ----------------------------------------------------------------------------------------------
# the server


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


def _get_bytes(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


# ----------------------------------------------------------------------------------------------
# toy runs


def _toy_picture_png(k: int) -> bytes:
    import torch
    from PIL import Image
    from benchmarks.toy_world import world as W
    b = W.sample(1, torch.Generator().manual_seed(5), labels=torch.tensor([k]))
    arr = (b.images[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def toy_api(workflow: dict, info: dict, ckpt_name: str, image_name: str, max_steps: int = 0,
            max_frames: int = 0) -> dict:
    """The API graph of ``workflow`` with only the toy-world changes (see the module docstring);
    ``max_steps`` / ``max_frames`` (0: none) cap every sampler's step count and the latent batch."""
    from benchmarks.toy_world import world as W
    api = wa.ui_to_api(workflow, info)
    for node in api.values():
        inp, t = node["inputs"], node["class_type"]
        if t == "CheckpointLoaderSimple":
            inp["ckpt_name"] = ckpt_name
        elif t in ("EmptyLatentImage", "ImageScale"):
            inp["width"] = inp["height"] = TOY_SIZE
        elif t == "LoadImage":
            inp["image"] = image_name
        if max_steps and isinstance(inp.get("steps"), int):
            inp["steps"] = min(inp["steps"], max_steps)
        if max_frames and t == "EmptyLatentImage":
            inp["batch_size"] = min(inp["batch_size"], max_frames)
        if max_frames and t == "I4VGenStaticVideoFromLatent" and isinstance(inp.get("frames"), int):
            inp["frames"] = min(inp["frames"], max_frames)
        for name, prompt in (("positive", W.caption(TOY_CLASS)), ("negative", "")):
            src = inp.get(name)
            if isinstance(src, list) and api[src[0]]["class_type"] == "CLIPTextEncode":
                api[src[0]]["inputs"]["text"] = prompt
    return api


def run_prompt(url: str, api: dict, timeout: float = 900.0) -> list:
    """POST /prompt, poll /history; the PIL frames of every saved image, in save-node id order."""
    from PIL import Image, ImageSequence
    pid = http(url + "/prompt", {"prompt": api, "client_id": uuid.uuid4().hex}, timeout=120)["prompt_id"]
    t0 = time.time()
    while True:
        try:
            hist = http(f"{url}/history/{pid}", timeout=120)
        except OSError:  # a server busy sampling on a loaded CPU can be slow to answer: ask again
            hist = {}
        if pid in hist and (hist[pid].get("status") or {}).get("completed") is not None:
            entry = hist[pid]
            if entry["status"].get("status_str") != "success":
                raise RuntimeError(json.dumps(entry["status"].get("messages"))[-2000:])
            break
        if time.time() - t0 > timeout:
            raise RuntimeError(f"prompt {pid} not done after {timeout:.0f} s")
        time.sleep(2)
    saves = [k for k, v in api.items() if v["class_type"] in ("SaveAnimatedWEBP", "SaveImage")]
    frames = []
    for k in sorted(saves, key=int):
        for im in entry["outputs"].get(k, {}).get("images", []):
            q = urllib.parse.urlencode({"filename": im["filename"], "subfolder": im["subfolder"], "type": im["type"]})
            pic = Image.open(io.BytesIO(_get_bytes(f"{url}/view?{q}")))
            frames += [f.convert("RGB").copy() for f in ImageSequence.Iterator(pic)]
    if not frames:
        raise RuntimeError("the run saved no image")
    return frames


def frames_grid(frames: list):
    """Up to MAX_FRAMES frames (evenly spaced) in one row of 4 per line, nearest-upscaled to
    THUMB_WIDTH pixels wide."""
    from PIL import Image
    n = len(frames)
    pick = [frames[round(i * (n - 1) / (min(n, MAX_FRAMES) - 1))] for i in range(min(n, MAX_FRAMES))] if n > 1 else frames
    cols = min(4, len(pick))
    rows = -(-len(pick) // cols)
    w, h = pick[0].size
    pad = 2
    grid = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), (32, 32, 32))
    for i, f in enumerate(pick):
        grid.paste(f, ((i % cols) * (w + pad), (i // cols) * (h + pad)))
    scale = THUMB_WIDTH / grid.width
    return grid.resize((THUMB_WIDTH, round(grid.height * scale)), Image.NEAREST)


def save_jpeg(img, path: Path) -> int:
    img.convert("RGB").save(path, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return path.stat().st_size


# ----------------------------------------------------------------------------------------------
# the frontend (headless Chromium over the DevTools protocol: scripts/chromium_cdp.py)

JS_LOAD_AND_FIT = """(async () => {
  const app = window.comfyAPI.app.app;
  await app.loadGraphData(%s, true, true, null, {showMissingNodesDialog: false, showMissingModelsDialog: false});
  await new Promise(r => setTimeout(r, 500));
  // the 4:3 part of the page clear of the side bar (left), menus (top) and zoom controls (bottom)
  let W = window.innerWidth - 80, H = window.innerHeight - 110 - 90;
  if (W > H * 4 / 3) W = Math.round(H * 4 / 3); else H = Math.round(W * 3 / 4);
  const c = app.canvas, clip = {x: 60, y: 110, width: W, height: H};
  let x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
  for (const n of app.graph._nodes) {
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - 36);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const r = c.canvas.getBoundingClientRect();
  const pad = 16, s = Math.min((clip.width - 2 * pad) / (x1 - x0), (clip.height - 2 * pad) / (y1 - y0));
  c.ds.scale = s;   // screen = (graph + offset) * scale, relative to the canvas element
  c.ds.offset = [(clip.x - r.x + (clip.width - s * (x1 - x0)) / 2) / s - x0,
                 (clip.y - r.y + (clip.height - s * (y1 - y0)) / 2) / s - y0];
  c.setDirty(true, true);
  await new Promise(r => setTimeout(r, 1000));
  return JSON.stringify({n: app.graph._nodes.length, clip});
})()"""
# Menus, toasts and the minimap are drawn over the canvas: hidden (CSS) or outside the clip.
JS_QUIET = """(async () => {
  const st = document.createElement('style');
  st.textContent = '.p-toast, .p-toast-message, .minimap-main-container {display: none !important;}';
  document.head.appendChild(st);
  const app = window.comfyAPI.app.app;
  for (const [k, v] of [['Comfy.Minimap.Visible', false], ['LiteGraph.Canvas.MinFontSizeForLOD', 0]]) {
    try { await app.extensionManager.setting.set(k, v); } catch (e) {}   // settings one version lacks
  }
  app.canvas.show_info = false;      // the FPS / node-count text drawn on the canvas
  app.canvas.low_quality_zoom_threshold = 0;
  return true;
})()"""
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


GRAPH_VIEWPORT = (2060, 1700)


async def graph_thumbnails(url: str, files: list[Path], chromium: str) -> dict:
    from PIL import Image
    done = {}
    async with _browser(chromium, *GRAPH_VIEWPORT) as b:
        await b.open(url)
        await b.eval(JS_QUIET)
        for path in files:
            r = json.loads(await b.eval(JS_LOAD_AND_FIT % json.dumps(json.loads(path.read_text()))))
            n = r["n"]
            img = Image.open(io.BytesIO(await b.screenshot(r["clip"])))
            img = img.resize((THUMB_WIDTH, round(img.height * THUMB_WIDTH / img.width)), Image.LANCZOS)
            done[path] = save_jpeg(img, thumbnail_path(path))
            print(f"graph  {thumbnail_path(path).name}: {n} nodes, {done[path] / 1024:.0f} KB", flush=True)
    return done


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


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="workflow names (default: every workflows/*.json)")
    ap.add_argument("--comfyui", type=Path, default=comfyui_path())
    ap.add_argument("--toy-checkpoint", type=Path, default=None,
                    help="default: benchmarks/toy_world build.checkpoint_path()")
    ap.add_argument("--chromium", default=default_chromium())
    ap.add_argument("--browse", type=Path, default=None, help="save a screenshot of the template browser here")
    ap.add_argument("--no-thumbnails", action="store_true", help="only --browse")
    ap.add_argument("--toy-steps", type=int, default=20,
                    help="cap on every sampler's steps in toy runs (0: as shipped; DDIM 20 suits the toy model)")
    ap.add_argument("--toy-frames", type=int, default=16, help="cap on the frame count in toy runs (0: as shipped)")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # stop the server (finally) on kill
    from benchmarks.toy_world import build as B
    toy = (a.toy_checkpoint or B.checkpoint_path()).expanduser().resolve()
    if not toy.exists():
        print(f"WARNING: no toy-world checkpoint at {toy}; every thumbnail will be a graph screenshot", flush=True)
        toy = None
    files = ([WORKFLOWS / f"{Path(n).stem}.json" for n in a.names] if a.names
             else sorted(WORKFLOWS.glob("*.json")))
    if a.no_thumbnails:
        files = []
    root = a.comfyui.expanduser().resolve()
    log_path = Path(tempfile.gettempdir()) / f"tfv_thumbs_server_{os.getpid()}.log"
    failures = 0
    toy_files, graph = [], []
    for path in files:
        (toy_files if toy is not None and fits_toy(json.loads(path.read_text())) else graph).append(path)
    with server(root, toy, log_path, graph) as (url, base):
        info = http(url + "/object_info", timeout=120)
        version = http(url + "/system_stats")["system"].get("comfyui_version", "unknown")
        for path in toy_files:
            wf = json.loads(path.read_text())
            t0 = time.time()
            try:
                image_name = "tfv_toy_picture.png"
                (base / "input" / image_name).write_bytes(_toy_picture_png(TOY_CLASS))
                frames = run_prompt(url, toy_api(wf, info, toy.name, image_name, a.toy_steps, a.toy_frames))
                size = save_jpeg(frames_grid(frames), thumbnail_path(path))
                print(f"toy    {thumbnail_path(path).name}: {len(frames)} frames, {time.time() - t0:.0f} s, "
                      f"{size / 1024:.0f} KB", flush=True)
            except Exception as e:  # noqa: BLE001 -- reported, counted, next workflow
                failures += 1
                print(f"FAIL   {path.name}: {e}", flush=True)
        if graph:
            asyncio.run(graph_thumbnails(url, graph, a.chromium))
        if a.browse is not None:
            r = asyncio.run(browse(url, a.browse, a.chromium, version))
            listed = sorted(http(url + "/workflow_templates").get(LINK_NAME, []))
            shown = sorted(Path(f).stem for f in r.get("fetched", []))
            print(f"template browser (ComfyUI {version}): section clicked {r['clicked']}, {len(shown)} thumbnails "
                  f"fetched (HTTP 200) for {len(listed)} workflows listed by the server; not fetched: "
                  f"{sorted(set(listed) - set(shown))}, failed: {r.get('failed')}; {r['screenshot']}")
            if not r["clicked"] or shown != listed:
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""End-to-end run: a real ComfyUI server with this pack in custom_nodes/ executes the shipped ZS^2
workflow submitted over HTTP, and an animated file with the expected frame count lands in the output
folder.

Steps: symlink the repo into ``ComfyUI/custom_nodes/`` (if not there) -> start
``python main.py --cpu --listen 127.0.0.1 --port N --disable-auto-launch`` -> wait for
``GET /system_stats`` -> check the start-up log for import errors of this pack -> convert the
shipped UI workflow to the API format with the server's ``GET /object_info`` definitions -> override
ONLY the checkpoint name, the resolution and the step count -> ``POST /prompt`` -> poll
``GET /history/<id>`` -> open the saved animated WEBP and check its frame count -> stop the server.

    python scripts/make_random_sd15_checkpoint.py        # once: full-size random SD1.5 checkpoint
    python scripts/e2e_server_run.py --ckpt random_sd15.safetensors --width 256 --height 256 --steps 2

Exit status 0 only when everything above held. Prints the timings.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfyui"))
import workflow_api as wa  # noqa: E402

LINK_NAME = "comfyui-training-free-video"


def comfyui_path() -> Path:
    return Path(os.environ.get("COMFYUI_PATH") or Path.home() / "comfy" / "ComfyUI").expanduser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, data: dict | None = None, timeout: float = 30.0):
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def ensure_link(root: Path) -> tuple[Path, bool]:
    """The pack in custom_nodes/: an existing folder/link to this repo, else a new symlink."""
    custom = root / "custom_nodes"
    for p in custom.iterdir():
        try:
            if p.resolve() == REPO:
                return p, False
        except OSError:
            continue
    link = custom / LINK_NAME
    if link.exists() or link.is_symlink():
        raise SystemExit(f"{link} exists and is not this repo; remove it or pass --comfyui for another ComfyUI")
    link.symlink_to(REPO, target_is_directory=True)
    return link, True


@contextlib.contextmanager
def comfyui_server(root: Path, port: int, log_path: Path, extra=()):
    """Start ``python main.py --cpu`` on loopback port ``port`` in ComfyUI folder ``root`` (``extra``:
    more main.py arguments), its output in ``log_path``; wait (600 s at most, else SystemExit) for
    ``GET /system_stats``. Yields ``(server, base_url, seconds_to_up)``; on exit stops the server."""
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
           "--disable-auto-launch", *extra]
    print(f"$ cd {root} && {' '.join(cmd)}   (log: {log_path})", flush=True)
    t_start = time.time()
    log = open(log_path, "w")
    server = subprocess.Popen(cmd, cwd=str(root), stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"server exited with {server.returncode}; see {log_path}")
            try:
                http(base + "/system_stats", timeout=5)
                break
            except OSError:  # URLError and ConnectionError are OSErrors
                if time.time() - t_start > 600:
                    raise SystemExit(f"server did not come up in 600 s; see {log_path}")
                time.sleep(1)
        yield server, base, time.time() - t_start
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@contextlib.contextmanager
def running_server(root: Path, port: int, log_path: Path, extra=(), keep_link: bool = False):
    """``comfyui_server`` in ComfyUI folder ``root`` with this pack linked into ``custom_nodes/``.
    Yields ``(server, link, base_url, seconds_to_up)``; on exit stops the server and removes a link it
    created (unless ``keep_link``)."""
    link, created = ensure_link(root)
    try:
        with comfyui_server(root, port, log_path, extra) as (server, base, t_up):
            yield server, link, base, t_up
    finally:
        if created and not keep_link:
            link.unlink()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", type=Path, default=comfyui_path(), help="ComfyUI folder (default: %(default)s)")
    ap.add_argument("--workflow", type=Path, default=REPO / "workflows" / "zs2_text_to_video_sd15.json")
    ap.add_argument("--ckpt", default="random_sd15.safetensors",
                    help="checkpoint file name in ComfyUI's checkpoints folder (default: %(default)s)")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--port", type=int, default=0, help="default: a free port")
    ap.add_argument("--timeout", type=float, default=7200, help="seconds to wait for the prompt")
    ap.add_argument("--keep-link", action="store_true", help="keep the custom_nodes symlink this script creates")
    ap.add_argument("--log", type=Path, default=None, help="server log file (default: a temp file)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="extra arguments for main.py (e.g. --output-directory DIR), must come last")
    a = ap.parse_args(argv)

    root = a.comfyui.expanduser().resolve()
    if not (root / "main.py").is_file():
        raise SystemExit(f"ComfyUI not found at {root}")
    port = a.port or free_port()
    log_path = a.log or Path(os.environ.get("TMPDIR", "/tmp")) / f"tfv_e2e_server_{port}.log"
    with running_server(root, port, log_path, a.extra, a.keep_link) as (server, link, base, t_up):
        print(f"server up in {t_up:.1f} s", flush=True)

        text = log_path.read_text(errors="replace")
        ours = [ln for ln in text.splitlines() if link.name in ln]
        bad = [ln for ln in ours if "IMPORT FAILED" in ln or "Cannot import" in ln or "Traceback" in ln]
        if bad or not any("custom_nodes" in ln for ln in ours):
            raise SystemExit("pack import problem in the server log:\n" + "\n".join(bad or ours or ["(no line)"]))
        print("pack loaded without import errors: " + ours[-1].strip(), flush=True)

        # The template browser (Workflow -> Browse Templates -> Custom Nodes) lists and serves workflows/.
        shipped = sorted(p.stem for p in (REPO / "workflows").glob("*.json"))
        listed = sorted(http(base + "/workflow_templates").get(link.name, []))
        if listed != shipped:
            raise SystemExit(f"template browser lists {listed} for {link.name}, expected {shipped}")
        served = http(f"{base}/api/workflow_templates/{link.name}/{a.workflow.name}")
        if served != json.loads(a.workflow.read_text()):
            raise SystemExit(f"/api/workflow_templates/{link.name}/{a.workflow.name} differs from the file")
        print(f"template browser lists {len(listed)} workflows and serves {a.workflow.name}", flush=True)

        info = http(base + "/object_info", timeout=120)
        ckpts = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        if a.ckpt not in ckpts:
            raise SystemExit(f"{a.ckpt} is not in the server's checkpoints {ckpts}; "
                             f"run python scripts/make_random_sd15_checkpoint.py")
        api = wa.convert_file(a.workflow, info)
        # The only changes to the shipped graph:
        wa.set_inputs(api, "CheckpointLoaderSimple", ckpt_name=a.ckpt)
        wa.set_inputs(api, "EmptyLatentImage", width=a.width, height=a.height)
        wa.set_inputs(api, "KSampler", steps=a.steps)
        lat = api[wa.find_nodes(api, "EmptyLatentImage")[0]]["inputs"]
        frames = int(lat["batch_size"])
        print(f"submitting {a.workflow.name}: ckpt_name={a.ckpt}, {a.width}x{a.height}, steps={a.steps}, "
              f"{frames} frames; everything else as shipped", flush=True)

        t_sub = time.time()
        r = http(base + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
        pid = r["prompt_id"]
        if r.get("node_errors"):
            raise SystemExit(f"node errors: {r['node_errors']}")
        hist = None
        while time.time() - t_sub < a.timeout:
            h = http(f"{base}/history/{pid}")
            if pid in h and h[pid].get("status", {}).get("completed") is not None:
                hist = h[pid]
                if hist["status"].get("status_str") in ("success", "error"):
                    break
            if server.poll() is not None:
                raise SystemExit(f"server died; see {log_path}")
            time.sleep(2)
        t_run = time.time() - t_sub
        if hist is None:
            raise SystemExit(f"prompt not finished after {a.timeout} s")
        status = hist["status"]
        if status.get("status_str") != "success":
            raise SystemExit(f"prompt failed: {json.dumps(status.get('messages'))[:4000]}")
        ts = {m[0]: m[1].get("timestamp") for m in status.get("messages", []) if isinstance(m, list)}
        exec_s = (ts["execution_success"] - ts["execution_start"]) / 1000 if {"execution_start", "execution_success"} <= ts.keys() else t_run

        out_dir = root / "output"
        if "--output-directory" in a.extra:
            out_dir = Path(a.extra[a.extra.index("--output-directory") + 1])
        save_id = wa.find_nodes(api, "SaveAnimatedWEBP")[0]
        files = hist["outputs"][save_id]["images"]
        from PIL import Image
        for f in files:
            p = out_dir / f.get("subfolder", "") / f["filename"]
            with Image.open(p) as im:
                n = getattr(im, "n_frames", 1)
                size = im.size
            print(f"output: {p} ({n} frames, {size[0]}x{size[1]})")
            if n != frames:
                raise SystemExit(f"expected {frames} frames, got {n}")
        print(f"timing: server start {t_up:.1f} s, prompt {t_run:.1f} s (execution {exec_s:.1f} s, "
              f"{a.steps} steps x CFG on {frames} frames at {a.width}x{a.height}, incl. checkpoint load, "
              f"text encoding, VAE decode)")
        print("E2E OK")
        return 0


if __name__ == "__main__":
    sys.exit(main())

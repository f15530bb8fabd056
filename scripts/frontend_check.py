#!/usr/bin/env python
"""Check the shipped workflows in ComfyUI's REAL frontend (headless Chromium).

Starts a ComfyUI server with this pack in custom_nodes/, opens its web UI in headless Chromium
(the Chrome DevTools Protocol client of ``scripts/chromium_cdp.py``), and for each workflows/*.json:
``app.loadGraphData(file)`` then ``app.graphToPrompt()`` -- exactly what the Queue button sends --
and compares that API graph with ``tests/comfyui/workflow_api.ui_to_api`` on the same file and the
server's ``/object_info``. Also checks the frontend re-serialises the same widget values and links,
that no node is missing, and saves a screenshot of each graph (``--shots DIR``).

    apt-get install chromium      # once (Debian package)
    python scripts/frontend_check.py --shots /tmp/tfv_shots

Workflows needing third-party nodes that the server lacks (AnimateDiff-Evolved) are reported as
skipped. Exit status 1 on any difference.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))
import workflow_api as wa  # noqa: E402
from chromium_cdp import Browser, default_chromium  # noqa: E402
from e2e_server_run import comfyui_path, free_port, http, running_server  # noqa: E402

JS_LOAD = """(async () => {
  const app = window.comfyAPI.app.app;
  await app.loadGraphData(%s, true, true, null, {showMissingNodesDialog: false, showMissingModelsDialog: false});
  await new Promise(r => setTimeout(r, 300));
  const p = await app.graphToPrompt();
  app.canvas.ds.scale = %f; app.canvas.ds.offset = [0, 0]; app.canvas.setDirty(true, true);
  await new Promise(r => setTimeout(r, 500));
  const types = app.graph._nodes.map(n => [n.id, n.type, n.constructor.nodeData ? true : (n.isVirtualNode || false)]);
  return JSON.stringify({output: p.output, workflow: p.workflow, types});
})()"""


def _strip(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


async def check(base: str, files: list[Path], info: dict, shots: Path | None, chromium: str,
                a_scale: float = 0.7, save_prompts: Path | None = None) -> int:
    failures = 0
    async with Browser(chromium, 3000, 1500) as b:
        await b.open(base)
        for path in files:
            wf = json.loads(path.read_text())
            missing = [t for t in wa.node_types(wf) if t not in info and t not in wa.VIRTUAL_NODE_TYPES]
            if missing:
                print(f"SKIP {path.name}: server lacks {missing}")
                continue
            res = json.loads(await b.eval(JS_LOAD % (json.dumps(wf), a_scale)))
            theirs = _strip(res["output"])
            if save_prompts is not None:
                save_prompts.mkdir(parents=True, exist_ok=True)
                (save_prompts / f"{path.stem}.prompt.json").write_text(
                    json.dumps(theirs, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            problems = []
            # Files saved by a frontend (the stock templates, with subgraphs) are converted as the
            # frontend reads them; this pack's own files must match their definitions exactly.
            stock = (bool(wa.subgraph_definitions(wf)) or WORKFLOWS not in path.resolve().parents
                     or "training_free_video" in (wf.get("extra") or {}))
            try:
                ours = _strip(wa.ui_to_api(wf, info, strict=not stock))
            except wa.WorkflowFormatError as e:
                problems.append(f"converter: {e}")
                ours = theirs
            if ours != theirs:
                for k in sorted(set(ours) | set(theirs), key=wa.exec_id_key):
                    if ours.get(k) != theirs.get(k):
                        problems.append(f"node {k}: converter {ours.get(k)} != frontend {theirs.get(k)}")
            fe_nodes = {n["id"]: n for n in res["workflow"]["nodes"]}
            for n in ([] if stock else wf["nodes"]):
                fn = fe_nodes.get(n["id"])
                if fn is None:
                    problems.append(f"node {n['id']} lost by the frontend")
                    continue
                if fn.get("widgets_values", []) != n["widgets_values"]:
                    problems.append(f"node {n['id']} {n['type']}: widgets_values {n['widgets_values']} "
                                    f"re-serialised as {fn.get('widgets_values')}")
            fe_links = sorted(tuple(l[:6]) for l in res["workflow"]["links"])
            if not stock and fe_links != sorted(tuple(l) for l in wf["links"]):
                problems.append(f"links differ: file {wf['links']} frontend {res['workflow']['links']}")
            defs = wa.subgraph_definitions(wf)
            unknown = [t for t in res["types"] if not t[2] and t[1] not in defs]
            if unknown:
                problems.append(f"nodes the frontend does not know: {unknown}")
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                (shots / f"{path.stem}.png").write_bytes(await b.screenshot())
            if problems:
                failures += 1
                print(f"FAIL {path.name}:\n  " + "\n  ".join(problems))
            else:
                print(f"OK   {path.name}: frontend graphToPrompt == converter ({len(ours)} API nodes)")
    return failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", type=Path, default=comfyui_path())
    ap.add_argument("--shots", type=Path, default=None, help="save a screenshot per workflow here")
    ap.add_argument("--chromium", default=default_chromium())
    ap.add_argument("--save-prompts", type=Path, default=None,
                    help="write the frontend's graphToPrompt output of each file here (<stem>.prompt.json)")
    ap.add_argument("files", nargs="*", type=Path)
    a = ap.parse_args(argv)
    files = a.files or sorted((REPO / "workflows").glob("*.json"))
    root = a.comfyui.expanduser().resolve()
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"tfv_frontend_server_{port}.log"
    with running_server(root, port, log_path) as (_server, _link, base, _t_up):
        info = http(base + "/object_info", timeout=120)
        failures = asyncio.run(check(base, files, info, a.shots, a.chromium, save_prompts=a.save_prompts))
    print("frontend check:", "FAILED" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""What a new user sees in ComfyUI's REAL frontend (headless Chromium, ComfyUI 0.33.0): three checks,
each with a screenshot.

1. **Missing models.** A shipped workflow opened on a ComfyUI that has none of its model files (a
   temporary ``--base-directory`` with empty model folders) shows the frontend's missing-models dialog,
   and the dialog names every model file of the workflow's loaders with its download (the
   ``properties.models`` URLs of ``scripts/build_workflows.py``).
2. **Blueprints.** Every ``subgraphs/*.json`` appears in the node library (searched by name in the
   library's search box).
3. **Template browser.** Workflow -> Browse Templates -> this pack: every workflow is listed and its
   thumbnail fetched (``make_thumbnails.browse``).

    python scripts/frontend_first_run.py --shots /tmp/tfv_first_run [--workflow wan22_t2v_freeinit]

Needs Debian's ``chromium``. The server runs ``main.py --cpu`` of ``--comfyui`` (``COMFYUI_PATH``) with
this repo linked into a temporary base directory's ``custom_nodes/``; nothing is written into the ComfyUI
folder. Exit status 1 when a check fails.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from chromium_cdp import Browser, default_chromium  # noqa: E402
from e2e_server_run import comfyui_path, http  # noqa: E402
import make_thumbnails as mt  # noqa: E402

JS_LOAD_WITH_DIALOG = """(async () => {
  const app = window.comfyAPI.app.app;
  await app.loadGraphData(%s, true, true, null);
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  await sleep(4000);
  // frontend 1.49: missing models are errors of their loaders; the toast's "View details" opens the
  // Errors panel with a "Missing Models" list (file, folder, Copy URL, Download)
  const details = [...document.querySelectorAll('button')].find(b => /view details/i.test(b.innerText));
  if (details) { details.click(); await sleep(2500); }
  const boxes = [...document.querySelectorAll('div, section, aside')].filter(e => /Missing Models/.test(e.innerText || '')
                 && [...e.querySelectorAll('button')].some(b => b.innerText.trim() === 'Download'));
  boxes.sort((a, b) => a.innerText.length - b.innerText.length);
  const panel = boxes[0];
  if (!panel) return JSON.stringify({n: 0, text: '', hrefs: [], titles: [], details: !!details});
  // what each Download button opens: the frontend opens the URL through a temporary <a>.click()
  const opened = [], orig = HTMLAnchorElement.prototype.click;
  HTMLAnchorElement.prototype.click = function () { opened.push(this.href); };
  try {
    for (const b of [...panel.querySelectorAll('button')].filter(b => b.innerText.trim() === 'Download')) {
      b.click(); await sleep(300);
    }
  } finally { HTMLAnchorElement.prototype.click = orig; }
  return JSON.stringify({n: 1, text: panel.innerText, hrefs: opened,
                         titles: [...panel.querySelectorAll('[title]')].map(e => e.getAttribute('title')),
                         details: !!details});
})()"""

JS_CLOSE_DIALOGS = """(async () => {
  for (const b of document.querySelectorAll('[role=dialog] button[aria-label=Close], .p-dialog-header-close')) b.click();
  await new Promise(r => setTimeout(r, 800));
  return document.querySelectorAll('[role=dialog]').length;
})()"""

JS_LIBRARY_SEARCH = """(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const app = window.comfyAPI.app.app;
  // the search box of the LEFT side bar (the right-hand Errors panel has a search box too)
  const searchBox = () => [...document.querySelectorAll('input')].find(i => /search/i.test(i.placeholder || '')
                             && i.offsetParent !== null && i.getBoundingClientRect().x < 500);
  if (!searchBox()) {   // the command toggles: open the node library only when it is closed
    try { await app.extensionManager.command.execute('Workspace.ToggleSidebarTab.node-library'); } catch (e) {}
    await sleep(2500);
  }
  const input = searchBox();
  if (!input) return JSON.stringify({opened: false});
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  setter.call(input, %s);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  await sleep(2500);
  const side = input.closest('.side-bar-panel, .sidebar-content-container, aside, [class*=sidebar]') || document.body;
  const titles = [...side.querySelectorAll('[title], [aria-label]')].map(e => e.getAttribute('title') || e.getAttribute('aria-label'));
  return JSON.stringify({opened: true, placeholder: input.placeholder, text: side.innerText, titles});
})()"""


JS_TEMPLATES_OPEN = """[...document.querySelectorAll('[role=dialog]')].some(d => /Templates/.test(d.innerText || ''))"""


async def close_first_run_templates(b: Browser, wait: float = 8.0):
    """The frontend opens the template browser for a first-time user, sometimes seconds after start: wait
    for it (``wait`` s at most) and close it (Escape)."""
    for _ in range(int(wait * 2)):
        if await b.eval(JS_TEMPLATES_OPEN):
            await b.escape()
            return
        await asyncio.sleep(0.5)


def model_entries(workflow: dict) -> list[dict]:
    return [m for n in workflow["nodes"] for m in (n.get("properties") or {}).get("models", [])]


async def run(url: str, shots: Path, chromium: str, workflow: Path, version: str) -> int:
    failures = 0
    shots.mkdir(parents=True, exist_ok=True)
    wf = json.loads(workflow.read_text())
    want = model_entries(wf)
    async with Browser(chromium, 1600, 1100, mt.CHROMIUM_FLAGS, network=True) as b:
        await b.open(url)
        await close_first_run_templates(b)
        r = json.loads(await b.eval(JS_LOAD_WITH_DIALOG % json.dumps(wf)))
        if await b.eval(JS_TEMPLATES_OPEN):
            await b.escape(1)
        (shots / f"missing_models_{version}.png").write_bytes(await b.screenshot())
        (shots / "missing_models_dialog.txt").write_text(r["text"] + "\n\nhrefs:\n" + "\n".join(r["hrefs"])
                                                         + "\n\ntitles:\n" + "\n".join(map(str, r["titles"])))
        named = [m["name"] for m in want if m["name"] in r["text"]]
        linked = [m["name"] for m in want if m["url"] in r["hrefs"]]
        print(f"missing models ({workflow.stem}): panel found {bool(r['n'])}; {len(named)} of {len(want)} files "
              f"named, {len(linked)} of {len(want)} Download buttons open the file's URL; "
              f"screenshot {shots / f'missing_models_{version}.png'}")
        if r["n"] == 0 or len(named) != len(want) or len(linked) != len(want):
            failures += 1
        await b.eval(JS_CLOSE_DIALOGS)
        await b.escape()
        found = {}
        for p in sorted((REPO / "subgraphs").glob("*.json")):
            s = json.loads(await b.eval(JS_LIBRARY_SEARCH % json.dumps(p.stem)))
            found[p.stem] = bool(s.get("opened")) and (p.stem in s.get("text", "") or p.stem in s.get("titles", []))
            if not found[p.stem]:
                print(f"  not found: {p.stem!r}; the library showed: {s.get('text', '')[:400]!r}")
            if p.stem.startswith("FreeInit KSampler (one"):
                (shots / f"node_library_{version}.png").write_bytes(await b.screenshot())
        print(f"blueprints in the node library: {sum(found.values())} of {len(found)} "
              f"(missing: {[k for k, v in found.items() if not v]}); screenshot {shots / f'node_library_{version}.png'}")
        if not all(found.values()):
            failures += 1
    r = await mt.browse(url, shots, chromium, version)
    listed = sorted(http(url + "/workflow_templates").get(mt.LINK_NAME, []))
    shown = sorted(Path(f).stem for f in r.get("fetched", []))
    print(f"template browser: section clicked {r['clicked']}, {len(shown)} of {len(listed)} thumbnails fetched "
          f"(failed: {r.get('failed')}); screenshot {r['screenshot']}")
    if not r["clicked"] or shown != listed:
        failures += 1
    return failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", type=Path, default=comfyui_path())
    ap.add_argument("--shots", type=Path, default=Path(tempfile.gettempdir()) / "tfv_first_run")
    ap.add_argument("--workflow", default="wan22_t2v_freeinit", help="the workflow opened without its models")
    ap.add_argument("--chromium", default=default_chromium())
    a = ap.parse_args(argv)
    log_path = Path(tempfile.gettempdir()) / "tfv_first_run_server.log"
    with mt.server(a.comfyui.expanduser().resolve(), None, log_path) as (url, _base):
        version = http(url + "/system_stats")["system"].get("comfyui_version", "unknown")
        failures = asyncio.run(run(url, a.shots, a.chromium, REPO / "workflows" / f"{a.workflow}.json", version))
    print("first-run check:", "FAILED" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

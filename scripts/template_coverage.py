#!/usr/bin/env python
"""How much of ComfyUI's stock template usage has a twin in this pack, per model family.

Reads the installed ``comfyui-workflow-templates`` index (``comfyui_workflow_templates_json/templates/
index.json``; ComfyUI 0.33.0 pins 0.11.44), whose entries give each template's ``usage`` count, and this
pack's ``workflows/*.json``. A workflow is a twin of the stock template named in its
``extra.training_free_video.source_template`` (written by ``scripts/build_template_twins.py``); a
workflow without that record counts for nothing, whatever its name.

Local templates are those whose name does not start with ``api_`` (API-node templates run on a paid
service, not on the user's model). A template's family is the first of its ``models`` that carries a
version number (``Wan2.2``, ``LTX-2.3``, ``MiniMax H3``), else its first model.

    python scripts/template_coverage.py                 # video, then image
    python scripts/template_coverage.py --type video --markdown

Needs only the template package (no ComfyUI boot): run it with the Python that has it
(``/work/envs/c033/venv/bin/python`` here), or pass ``--templates DIR``.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = REPO / "workflows"
TWIN_KEY = "training_free_video"  # extra.<TWIN_KEY>.source_template


def templates_dir() -> Path | None:
    try:
        import comfyui_workflow_templates_json
    except ImportError:
        return None
    d = Path(comfyui_workflow_templates_json.__file__).resolve().parent / "templates"
    return d if (d / "index.json").exists() else None


def templates_version() -> str | None:
    """Version of the ``comfyui-workflow-templates`` distribution ComfyUI pins (None when absent)."""
    from importlib import metadata
    try:
        return metadata.version("comfyui-workflow-templates")
    except metadata.PackageNotFoundError:
        return None


def family(entry: dict) -> str:
    models = entry.get("models") or []
    for m in models:
        if re.search(r"\d", m):
            return m
    return models[0] if models else entry["name"]


def local_templates(index: list, media_type: str) -> list[dict]:
    """Entries of the index categories of ``media_type`` ('video', 'image', ...), API templates
    excluded, each name once."""
    seen, out = set(), []
    for cat in index:
        if cat.get("type") != media_type:
            continue
        for t in cat.get("templates", []):
            if t["name"].startswith("api_") or t["name"] in seen:
                continue
            seen.add(t["name"])
            out.append(t)
    return out


def twins(workflow_dir: Path = WORKFLOW_DIR) -> dict[str, list[str]]:
    """``{source template: [twin workflow names]}`` from the workflows' recorded source."""
    out: dict = defaultdict(list)
    for p in sorted(workflow_dir.glob("*.json")):
        meta = (json.loads(p.read_text()).get("extra") or {}).get(TWIN_KEY) or {}
        if meta.get("source_template"):
            out[meta["source_template"]].append(p.stem)
    return dict(out)


def coverage(index: list, media_type: str, twin_map: dict) -> tuple[list[tuple], tuple]:
    """Rows ``(family, templates, twinned templates, usage, twinned usage)`` by usage, and the total."""
    fam: dict = defaultdict(lambda: [0, 0, 0, 0])
    for t in local_templates(index, media_type):
        row = fam[family(t)]
        u = int(t.get("usage") or 0)
        row[0] += 1
        row[2] += u
        if t["name"] in twin_map:
            row[1] += 1
            row[3] += u
    rows = sorted(((f, *v) for f, v in fam.items()), key=lambda r: (-r[3], r[0]))
    total = ("all", *(sum(r[i] for r in rows) for i in range(1, 5)))
    return rows, total


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f} %" if b else "-"


def render(media_type: str, rows: list, total: tuple, markdown: bool) -> str:
    head = ("family", "templates", "with twin", "usage", "usage with twin", "share")
    lines = [(r[0], str(r[1]), str(r[2]), f"{r[3]:,}", f"{r[4]:,}", _pct(r[4], r[3])) for r in rows + [total]]
    if markdown:
        out = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
        out += [f"| {' | '.join(line)} |" for line in lines]
        return "\n".join(out)
    w = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(cells))  # noqa: E731
    return "\n".join([f"{media_type} templates", fmt(head)] + [fmt(line) for line in lines])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--templates", type=Path, default=None, help="templates folder holding index.json")
    ap.add_argument("--type", action="append", choices=["video", "image", "audio", "3d"],
                    help="media type(s); default video and image")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args(argv)
    tdir = a.templates or templates_dir()
    if tdir is None:
        print("comfyui-workflow-templates is not installed here (ComfyUI 0.33.0's requirements install it); "
              "pass --templates DIR", file=sys.stderr)
        return 2
    index = json.loads((tdir / "index.json").read_text())
    twin_map = twins()
    print(f"comfyui-workflow-templates {templates_version() or '?'} ({tdir}); twins: "
          + (", ".join(f"{k} -> {', '.join(v)}" for k, v in sorted(twin_map.items())) or "none"))
    for media_type in a.type or ["video", "image"]:
        rows, total = coverage(index, media_type, twin_map)
        print()
        print(render(media_type, rows, total, a.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

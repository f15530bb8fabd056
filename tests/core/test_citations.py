"""Every citation in the repo's .py and .md files points at something a user of the repo has: a page
of the repo (docs/..., README.md), a section of such a page that exists, or a paper / public
repository named by title or address. Citations of notes kept outside the repo (the project's old
shared algorithm and ComfyUI notes, paper text files, sibling folders of the checkout) fail here.

Rules, checked per file:

* no reference to the outside notes and folders (:data:`OUTSIDE`);
* every ``name.md`` / ``dir/name.md`` mentioned resolves: relative to the file, to the repo root, to
  docs/ (links that code writes into those pages) or (for a bare file name) to some .md file of the
  repo with that name;
* ``page.md section N`` (``N`` like ``3`` or ``2.3``) names a heading ``N.`` / ``N`` of that page;
* ``page.md, Title`` (a capitalised title after the comma) starts with a heading title of that page;
* a Markdown link ``[text](page.md#anchor)`` (or ``#anchor``) leads to an existing page and heading.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", "__pycache__", "node_modules", ".pytest_cache", "build", "dist"}
THIS_FILE = Path(__file__).resolve()

# References to material outside the repo. Built from pieces so that this file does not cite them.
OUTSIDE = {
    "the old shared algorithm notes": re.compile(r"\b" + "ALGORITHMS" + r"\.md\b"),
    "the old shared ComfyUI notes": re.compile(r"\b" + "COMFY" + r"\.md\b"),
    "the old shared fixture notes": re.compile(r"\b(?:" + "FIXTURES" + "|" + "DEVELOPERS" + r")\.md\b"),
    "the paper text files": re.compile(r"(?<![\w.-])" + "papers" + r"/\S"),
    "a folder beside the checkout": re.compile(r"\.\./" + "shared" + r"\b|/work/" + "shared" + r"\b"),
}
MD_REF = re.compile(r"(?<![\w/.:-])((?:\.\./|[\w-]+/)*[\w-]+\.md)\b")
SECTION_REF = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md),?\s+sections?\s+(\d+(?:\.\d+)*)")
TITLE_REF = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md), ([A-Z][^\n]*)")
MD_LINK = re.compile(r"\]\(([^()\s]*?)(?:#([^()\s]+))?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def repo_files(exts=(".py", ".md")) -> list[Path]:
    out = []
    for p in REPO_ROOT.rglob("*"):
        rel = p.relative_to(REPO_ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if p.is_file() and p.suffix in exts and p.resolve() != THIS_FILE:
            out.append(p)
    return sorted(out)


MD_BY_NAME: dict[str, list[Path]] = {}
for _p in repo_files((".md",)):
    MD_BY_NAME.setdefault(_p.name, []).append(_p)


def resolve(ref: str, source: Path) -> Path | None:
    """The repo file a ``.md`` reference in ``source`` means, or None."""
    for base in (source.parent, REPO_ROOT, REPO_ROOT / "docs"):    # docs/: links written into its pages
        p = (base / ref).resolve()
        if p.is_file() and p.is_relative_to(REPO_ROOT):
            return p
    if "/" not in ref and ref in MD_BY_NAME:
        return MD_BY_NAME[ref][0]
    return None


def headings(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return [m.group(2).strip() for m in HEADING.finditer(text)]


def slug(title: str) -> str:
    """GitHub's anchor of a heading."""
    s = title.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def has_section(page: Path, number: str) -> bool:
    return any(h == number or h.startswith(number + ".") and not h[len(number) + 1:len(number) + 2].isdigit()
               or h.startswith(number + " ") for h in headings(page))


def problems_of(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    flat = re.sub(r"\s+", " ", text)
    rel = path.relative_to(REPO_ROOT) if path.resolve().is_relative_to(REPO_ROOT) else path
    out = []
    for what, rx in OUTSIDE.items():
        for m in rx.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append(f"{rel}:{line}: cites {what} ({m.group(0)!r}), which are not in the repo")
    for m in MD_REF.finditer(text):
        if resolve(m.group(1), path) is None:
            line = text.count("\n", 0, m.start()) + 1
            out.append(f"{rel}:{line}: cites {m.group(1)}, which is not a file of the repo")
    for m in SECTION_REF.finditer(flat):
        page = resolve(m.group(1), path)
        if page is not None and not has_section(page, m.group(2)):
            out.append(f"{rel}: cites {m.group(1)} section {m.group(2)}, but {page.relative_to(REPO_ROOT)} has "
                       f"no heading '{m.group(2)}.'")
    for m in TITLE_REF.finditer(flat):
        page = resolve(m.group(1), path)
        if page is None or page.suffix != ".md":
            continue
        titles = headings(page)
        if not any(m.group(2).startswith(t) for t in titles):
            out.append(f"{rel}: cites {m.group(1)}, {m.group(2)[:40]!r}..., but that page has no such heading "
                       f"(headings: {titles})")
    if path.suffix == ".md":
        for m in MD_LINK.finditer(FENCE.sub("", text)):
            target, anchor = m.group(1), m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or (target and not target.endswith(".md")):
                continue                                   # web addresses; pictures and other files
            page = path if not target else resolve(target, path)
            if page is None:
                out.append(f"{rel}: links to {target}, which is not a file of the repo")
            elif anchor and anchor not in {slug(h) for h in headings(page)}:
                out.append(f"{rel}: links to {target}#{anchor}, but {page.relative_to(REPO_ROOT)} has no such heading")
    return out


def test_the_scan_sees_the_repo():
    files = {p.relative_to(REPO_ROOT).as_posix() for p in repo_files()}
    assert {"README.md", "samplers/sigma_space.py", "nodes/zs2.py", "docs/algorithms.md"} <= files
    assert not any(f.startswith(".git/") for f in files)


@pytest.mark.parametrize("page,numbers", [("docs/algorithms.md", ["0", "1", "2", "3", "4", "5"])])
def test_algorithms_page_keeps_the_section_numbers(page, numbers):
    for n in numbers:
        assert has_section(REPO_ROOT / page, n), n


def test_every_citation_points_into_the_repo():
    problems = [p for f in repo_files() for p in problems_of(f)]
    assert not problems, "\n".join(problems)


def test_the_checks_catch_outside_citations(tmp_path):
    """The rules on a made-up file: each kind of bad citation is reported, good ones are not."""
    bad = tmp_path / "bad.py"
    lines = ['"""see ' + "ALGORITHMS" + '.md section 2; ' + "COMFY" + '.md "Wrappers"',
             "papers" + "/zs2.txt; ../" + "shared/ComfyUI; docs/nowhere.md; docs/algorithms.md section 9",
             'docs/comfyui.md, No Such Heading"""',
             "# docs/algorithms.md section 2.3, docs/comfyui.md, Wrappers"]
    bad.write_text("\n".join(lines), encoding="utf-8")
    found = problems_of(bad)               # repo pages resolve from the repo root
    text = "\n".join(found)
    for needle in ("algorithm notes", "ComfyUI notes", "paper text files", "beside the checkout", "docs/nowhere.md",
                   "section 9", "No Such Heading"):
        assert needle in text, (needle, text)
    assert "cites docs/algorithms.md section 2.3," not in text and "cites docs/comfyui.md, 'Wrappers" not in text
    assert len(found) == 9, text         # the two old notes: as outside notes and as missing files

"""The front door and docs/ point only at things that exist.

README.md and docs/*.md name files (`relabel/store.py`), pages (docs/records.md), make targets (`make table3`)
and modules (`python -m results.make`). A rename or a removed target must not leave a newcomer at a dead end, so
every relative link (and its #anchor), every repo path in code spans and blocks, every `make X` target and every
`python -m X` module is checked here; and the README stays one screen.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Copies of the team's shared reference pages (their paths name other repositories' files): not checked here
COPIES = ("references.md", "environment.md")
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in COPIES)]
README_MAX_LINES = 130
# Top-level folders of the repository whose paths the docs may name; runs/, data/ and results/rendered/ are
# outputs of a run, not files of the repository, so paths into them are not checked.
REPO_DIRS = ("relabel", "pretrain", "eval_real", "robustness", "transfer", "multilabel_coco", "results", "tests",
             "docs", "tools", "bench")
OUTPUTS = ("results/rendered/",)
# Files the docs link to before they exist, with the issue that adds them. Once one lands, its entry must go
# (test_planned_files_are_still_missing), so this list never hides a dead link.
PLANNED: dict = {}  # paths the docs link before they exist: path -> the issue that makes them
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w./$<-])((?:%s)/[\w./-]*[\w/])" % "|".join(REPO_DIRS))
MAKE = re.compile(r"(?:^|[\s;(])make((?:\s+[\w.=,-]+)+)")
PYM = re.compile(r"python3? -m ([\w.]+)")


def _code(text: str) -> list[str]:
    """The code in a page: fenced blocks and inline spans."""
    blocks = FENCE.findall(text)
    rest = FENCE.sub("", text)
    return blocks + SPAN.findall(rest)


def _makefile_targets() -> set:
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.*)$", text, re.M))
    targets = set(re.findall(r"^([\w.-]+)\s*:(?!=)", text, re.M))
    for line in re.findall(r"^\.PHONY:(.*)$", text, re.M):
        for word in line.split():
            m = re.fullmatch(r"\$\((\w+)\)", word)
            targets |= set(variables.get(m.group(1), "").split()) if m else {word}
    return targets - {".PHONY"}


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = re.sub(r"[`*_]", "", heading.strip().lower())
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(page: Path) -> set:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#{1,6}\s+(.*)$", text, re.M)}


def _problems(page: Path) -> list[str]:
    text = page.read_text()
    out = []
    for target in LINK.findall(FENCE.sub("", text)):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if dest.is_relative_to(ROOT) and dest.relative_to(ROOT).as_posix() in PLANNED:
            continue
        if not dest.exists():
            out.append(f"link to {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            out.append(f"link to {target}: {dest.name} has no heading with that anchor")
    make_targets = _makefile_targets()
    for code in _code(text):
        for m in PATH.finditer(code):
            path = m.group(1)
            # a file (has a suffix) or a folder (ends in /); `pretrain/resnet50/relabel` is an experiment id, and
            # `pretrain/resnet50/{original,relabel}` or `runs/<scale>/` a pattern, not a path
            is_path = path.endswith("/") or "." in path.rsplit("/", 1)[-1]
            is_path = is_path and code[m.end():m.end() + 1] not in ("{", "<", "*")
            if is_path and not path.startswith(OUTPUTS) and path not in PLANNED and not (ROOT / path).exists():
                out.append(f"`{path}`: no such file or folder")
        for group in MAKE.findall(code):
            for word in group.split():
                if re.fullmatch(r"[a-z][\w-]*", word) and word not in make_targets:  # not VAR=x, not `...`
                    out.append(f"`make {word}`: no such target in the Makefile")
        for module in PYM.findall(code):
            local = ROOT / module.replace(".", "/")
            if not (local.with_suffix(".py").exists() or (local / "__main__.py").exists()
                    or (not (ROOT / module.split(".")[0]).exists() and importlib.util.find_spec(module))):
                out.append(f"`python -m {module}`: no such module")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_reference_exists(page):
    assert _problems(page) == []


def test_readme_is_one_screen():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; keep it a front door (≤ {README_MAX_LINES}), move the rest to docs/"


def test_planned_files_are_still_missing():
    landed = [f"{p} ({why}) exists now: remove it from PLANNED" for p, why in PLANNED.items() if (ROOT / p).exists()]
    assert landed == []


def test_readme_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert pages, "docs/ holds no page"
    assert [p.name for p in pages if f"docs/{p.name}" not in readme] == []


def test_the_checker_catches_dead_references(tmp_path):
    """The checker itself can fail: a page with one dead reference of each kind yields one problem per kind."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n[a](missing.md) [b](#nowhere) `relabel/no_such_module.py` `make no-such-target`\n"
                    "an experiment id is no path: `pretrain/resnet50/relabel`; a folder is: `relabel/evaluators/`\n"
                    "```bash\npython -m relabel.no_such_cli --help\n```\n"
                    "fine: [c](#title) `relabel/records.py` `make table3 SEEDS=0,1,2` `python -m results.make`\n"
                    "outputs are not checked: `results/rendered/mini/table2.md`\n")
    assert len(_problems(page)) == 5, _problems(page)


@pytest.mark.parametrize("name", COPIES)
def test_reference_copies_match_the_shared_originals(name):
    """docs/references.md and docs/environment.md are copies of the team's shared/REFERENCES.md and ENVIRONMENT.md
    (so a clone has them); where shared/ is beside the checkout, the copies must not have drifted."""
    original = ROOT.parent / "shared" / name.upper().replace(".MD", ".md")
    if not original.is_file():
        pytest.skip("no ../shared beside this checkout")
    assert (ROOT / "docs" / name).read_text() == original.read_text(), f"docs/{name} drifted from {original}"

"""`python -m results.publish`: commit the records the tables read, and render them into results/<scale>/.

Publishing (`make publish`) reads the run records (runs/records/<scale>.jsonl, the records committed before and any
--records), keeps the current ones (written under each experiment's recipe now), and of those exactly the records
the renderer picks for a cell or a figure curve of any target (results.tables.TARGETS; the latest final record per
experiment, evaluator and seed, at every recorded seed). Those go, one line each in a fixed order, to
results/records/<scale>.jsonl; then every table and figure (.md, .csv, .png) and the claims ledger
(results.claims: claims.md, claims.csv) are rendered from that file alone into results/<scale>/, and README.md's
claims block is rewritten. Rendering is a pure function of the committed file, so tests/test_published.py can
check that re-rendering it reproduces results/<scale>/ byte for byte. `results.make` reads the committed records
too, so a fresh clone with them runs nothing for the cells they fill.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from relabel import launch, records as R
from results import claims, ledger, render, tables

RESULTS = Path(__file__).resolve().parent
ROOT = RESULTS.parent
README = ROOT / "README.md"
MARKERS = ("<!-- claims:start -->", "<!-- claims:end -->")
RENDERED = (".md", ".csv", ".png")  # what a published folder holds; anything else there is left alone


class PublishError(Exception):
    """A problem the user can fix: printed as one sentence, exit status 1."""


def published_root() -> Path:
    """Where the committed results live: results/. $RELABEL_PUBLISHED moves it (the tests point it at an empty
    folder, so that their runs and tables never see the committed results)."""
    return Path(os.environ.get("RELABEL_PUBLISHED") or RESULTS)


def published_records_path(scale: str) -> Path:
    """The committed records of a scale: results/records/<scale>.jsonl (what `results.make` reads besides runs/)."""
    return published_root() / "records" / f"{scale}.jsonl"


def published_dir(scale: str) -> Path:
    """The committed rendering of a scale: results/<scale>/."""
    return published_root() / scale


def _owns_readme(scale: str) -> bool:
    """README.md's claims block describes the repository's own mini results, never a publish elsewhere."""
    return scale == "mini" and published_root().resolve() == RESULTS


def _name(path: Path) -> str:
    """A path as the committed files name it: relative to the repository, never absolute."""
    p = Path(path).resolve()
    return p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else p.name


def _read(paths) -> list:
    try:
        return R.read_many(paths)
    except R.RecordError as e:
        raise PublishError(str(e)) from None


def describe(path: Path, records: list) -> str:
    """How rendered files name their records file: path, count and the first 12 hex digits of its sha256."""
    if not Path(path).is_file():
        return f"`{_name(path)}` — not published yet, 0 records"
    return f"`{_name(path)}` — {len(records)} records, sha256 `{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}`"


# ---- which records are published --------------------------------------------------------------------------------
def _sources(spec: tables.Table, scale: str) -> list:
    out = [s for row in spec.rows if scale in row.scales for s in row.sources if s is not None]
    if isinstance(spec.plot, tables.Curve):  # a curve reads its records as render.plot does
        out.append(tables.Source(spec.plot.experiment, spec.plot.evaluator, spec.plot.x))
    return out


def _picked(records: list, scale: str) -> dict:
    """{(target, source, seed): record id} — the record the renderer reads for each cell, curve and seed."""
    return {(name, src, seed): rec["record_id"] for name in tables.TARGETS for src in _sources(tables.get(name), scale)
            for seed, rec in render.select(records, src, scale, src.seeds).items()}


def select(records: list, scale: str) -> list:
    """The records the tables read at `scale`, in a fixed order (experiment, evaluator, seed, created, id).

    Records no cell reads (stale, superseded by a later record of the same seed, another scale, a non-final step)
    stay behind. Raises PublishError if the selection would render differently from `records` (only possible when
    two records of one cell and seed were written in the same second)."""
    by_id = {r["record_id"]: r for r in records}
    picked = _picked(records, scale)
    out = sorted({i: by_id[i] for i in picked.values()}.values(),
                 key=lambda r: (r["experiment"], r["evaluator"], r["seed"], r["created"], r["record_id"]))
    if _picked(out, scale) != picked:
        raise PublishError("two records of one cell and seed carry the same time stamp, so the published order "
                           "could pick the other one; remove the older from the records file and publish again")
    return out


def current(records: list) -> tuple[list, int]:
    """The records written under their experiment's recipe now, and how many stale ones were left out."""
    return launch.current_records(records, launch.discover())


def write_records(records: list, path: Path) -> None:
    """One compact line per record (as relabel.records writes them), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for rec in records:
        R.validate(rec)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
                           for r in records))
    os.replace(tmp, path)


# ---- rendering ---------------------------------------------------------------------------------------------------
def write_ledger(records_path: Path, out_dir: Path, scale: str) -> list[Path]:
    """claims.md and claims.csv under out_dir, from the records file alone (no file: every claim 'not run')."""
    records = _read([records_path])
    rows = claims.ledger(records, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = ledger.to_markdown(rows, scale, describe(records_path, records), records)
    return [R.write_text_atomic(out_dir / "claims.md", md),
            R.write_text_atomic(out_dir / "claims.csv", ledger.to_csv(rows))]


def render_published(records_path: Path, out_dir: Path, scale: str) -> list[Path]:
    """Every target's .md/.csv (and .png for a figure with data) plus the ledger, from `records_path` alone, into
    out_dir; files of those kinds there that the records no longer produce are removed. Deterministic: no time
    stamps, no absolute paths (matplotlib is pinned in requirements.txt; its PNGs carry no time)."""
    records = _read([records_path])
    desc = describe(records_path, records)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in tables.TARGETS:
        c = render.compute(tables.get(name), records, scale)
        written += [R.write_text_atomic(out_dir / f"{name}.md", render.to_markdown(c, desc)),
                    R.write_text_atomic(out_dir / f"{name}.csv", render.to_csv(c))]
        if render.plot(c, records, out_dir / f"{name}.png"):
            written.append(out_dir / f"{name}.png")
    written += write_ledger(records_path, out_dir, scale)
    for p in sorted(out_dir.iterdir()):
        if p.is_file() and p.suffix in RENDERED and p not in written:
            p.unlink()
    return written


def differences(committed: Path, rendered: Path) -> list[str]:
    """One sentence per file where the committed folder and a fresh rendering disagree (both ways)."""
    ours = {p.name for p in rendered.iterdir() if p.suffix in RENDERED}
    theirs = {p.name for p in committed.iterdir() if p.suffix in RENDERED} if committed.is_dir() else set()
    out = [f"{_name(committed / n)} is missing (the records render it)" for n in sorted(ours - theirs)]
    out += [f"{_name(committed / n)} is not rendered from the records (left from an earlier publish?)"
            for n in sorted(theirs - ours)]
    for n in sorted(ours & theirs):
        a, b = (committed / n).read_bytes(), (rendered / n).read_bytes()
        if a != b:
            where = next((f"line {i}" for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1) if x != y),
                         "length") if n.endswith((".md", ".csv")) else "bytes"
            out.append(f"{_name(committed / n)} differs from a re-render ({where})")
    return out


# ---- README ------------------------------------------------------------------------------------------------------
def readme_block(path: Path, scale: str = "mini") -> str:
    """What README.md holds between its claims markers: the ledger summary of `path`, its link, the annotator's
    regime (mini) and one line per paper table (`ledger.readme_block`)."""
    records = _read([path])
    return ledger.readme_block(claims.ledger(records, scale), len(records), f"results/{scale}/claims.md",
                               records if scale == "mini" else None)


def _readme_parts(readme: Path) -> tuple[str, str, str]:
    """(text before the claims block, the block, text after it)."""
    text, (start, end) = readme.read_text(), MARKERS
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise PublishError(f"{_name(readme)} needs one '{start}' line and one '{end}' line after it (under 'Claims "
                           "at a glance'); put them back and run `make claims` again")
    head, rest = text.split(start)
    block, tail = rest.split(end)
    return head, block.strip("\n"), tail


def update_readme(block: str, readme: Path | None = None) -> None:
    head, _, tail = _readme_parts(readme or README)
    R.write_text_atomic(readme or README, f"{head}{MARKERS[0]}\n{block}\n{MARKERS[1]}{tail}")


def readme_now(readme: Path | None = None) -> str:
    """The block README.md holds now (for the test that it never drifts from the ledger)."""
    return _readme_parts(readme or README)[1]


# ---- entry point -------------------------------------------------------------------------------------------------
def publish(scale: str, extra=(), log=print, allow_fixtures: bool = False) -> list[Path]:
    """Select, write and render (see the module docstring); returns the files written."""
    for p in extra:
        if not Path(p).is_file():
            raise PublishError(f"records file '{p}' does not exist")
    target = published_records_path(scale)
    sources = [p for p in (target, R.default_records_path(scale)) if p.is_file()] + [Path(p) for p in extra]
    read = _read(sources)  # (a damaged line: PublishError naming file:line)
    for p in sources:
        if (dup := R.duplicates(p)) is not None:
            raise PublishError(dup)
    # a record published before is also in runs/; a smoke run's (made under --set) is never published
    unique = {r["record_id"]: r for r in read if not R.overrides_of(r)}
    records, stale = current(list(unique.values()))
    chosen = select(records, scale)
    if not chosen:
        raise PublishError(f"no current record of any table at scale {scale} in "
                           f"{', '.join(map(_name, sources)) or R.default_records_path(scale)}; run the tables first "
                           f"(`make tables SEEDS=0,1,2`)")
    fixtures = [r["record_id"] for r in chosen if r.get("extra", {}).get("fixture")]
    if fixtures and not allow_fixtures:
        raise PublishError(f"{len(fixtures)} of the records to publish are test fixtures (extra.fixture), e.g. "
                           f"{fixtures[0]}; publish records of real runs only")
    write_records(chosen, target)
    written = render_published(target, published_dir(scale), scale)
    if _owns_readme(scale):
        update_readme(readme_block(target, scale))
    log(f"published {len(chosen)} records ({target.stat().st_size:,} bytes) to {_name(target)}; left out "
        f"{stale} stale record(s) and {len(records) - len(chosen)} current one(s) that no cell reads")
    log(f"rendered {len(written)} files into {_name(published_dir(scale))}/; "
        f"{claims.summary(claims.ledger(chosen, scale))}")
    return written


def check(scale: str, log=print) -> int:
    """Re-renders the committed records into a temporary folder and compares; also counts stale records."""
    path = published_records_path(scale)
    if not path.is_file():
        raise PublishError(f"{_name(path)} does not exist yet; `make publish` writes it")
    with tempfile.TemporaryDirectory() as tmp:
        render_published(path, Path(tmp), scale)
        problems = differences(published_dir(scale), Path(tmp))
    if _owns_readme(scale) and readme_now() != readme_block(path, scale):
        problems.append("README.md's claims block differs from the ledger; run `make claims`")
    _, stale = current(_read([path]))
    if stale:
        problems.append(f"{stale} committed record(s) were written under an earlier recipe; run the tables and "
                        f"`make publish` again")
    for p in problems:
        log(f"  {p}")
    log(f"{_name(published_dir(scale))}/: " + (f"{len(problems)} problem(s)" if problems else "matches its records"))
    return 1 if problems else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m results.publish", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="C" + __doc__.split(": c", 1)[1],
        epilog="examples:\n  python -m results.publish            # after `make tables SEEDS=0,1,2`; then commit "
               "results/records/ and results/mini/\n  python -m results.publish --claims   # the ledger and README "
               "block only, from the committed records (seconds)\n  python -m results.publish --check    # does "
               "results/mini/ match its records? (what tests/test_published.py checks)")
    ap.add_argument("--scale", default="mini", choices=R.SCALES, help="which records (default mini)")
    ap.add_argument("--records", action="append", default=[], metavar="JSONL",
                    help="also publish from these record files (e.g. runs copied from another machine)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--claims", action="store_true",
                      help="only write results/<scale>/claims.md and .csv (and README.md's claims block, at mini) "
                           "from the committed records; runs and selects nothing")
    mode.add_argument("--check", action="store_true",
                      help="re-render the committed records into a temporary folder, compare with results/<scale>/ "
                           "and README.md byte for byte, and count records stale under the code now; exit 1 on any "
                           "difference")
    a = ap.parse_args(argv)
    try:
        if a.check:
            return check(a.scale)
        if a.claims:
            path = published_records_path(a.scale)
            written = write_ledger(path, published_dir(a.scale), a.scale)
            if _owns_readme(a.scale):
                update_readme(readme_block(path, a.scale))
            print(f"wrote {', '.join(map(_name, written))}" + (" and README.md's claims block" if _owns_readme(
                a.scale) else "") + f" from {describe(path, _read([path]))}")
            print(claims.summary(claims.ledger(_read([path]), a.scale)))
            return 0
        publish(a.scale, a.records)
        return 0
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

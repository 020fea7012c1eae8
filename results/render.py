"""Renders a table or figure spec + run records into Markdown, LaTeX, CSV and (for figures) PNG.

`compute` is the one place where records become cell values (mean ± sample std over seeds, latest final record
per seed); the writers below are pure functions of its result, so the same records always give the same files.
Missing cells show "—" and are listed under the table with the experiment that would fill them.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from relabel import records as R
from results.tables import Col, Curve, Scatter, Source, Table

# Line styles of a scatter's reference levels (rows without an x value), distinct for up to six of them (Fig. 6 can
# have five before its cost records land).
_LEVEL_STYLES = ("--", ":", "-.", (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)))

SCALE_BANNER = {
    "mini": ("Scale: **mini** — the bundled miniature world on CPU, small timm models. Absolute numbers are not "
             "comparable with the paper's ImageNet numbers; compare orderings and deltas."),
    "full": "Scale: **full** — real datasets at the paper's settings.",
}
DASH = "—"


@dataclass
class Cell:
    """Our value of one cell: per-seed values and where they came from."""
    values: dict = field(default_factory=dict)  # seed -> float
    records: list = field(default_factory=list)

    @property
    def n(self):
        return len(self.values)

    @property
    def mean(self):
        return statistics.fmean(self.values.values()) if self.values else None

    @property
    def std(self):
        return statistics.stdev(self.values.values()) if self.n > 1 else None


@dataclass
class Computed:
    table: Table
    scale: str
    seeds: tuple | None  # requested seeds; None = all that exist
    cells: dict  # (row key, col key) -> Cell (empty Cell when missing)
    missing: list  # (row, col, source, missing seeds) for cells we should have and lack
    fixture: bool  # any record used is a test fixture


def select(records, source: Source, scale: str, seeds=None) -> dict:
    """The latest final record per seed for a source at a scale: {seed: record}."""
    out = {}
    for rec in records:  # file order; a later record of the same seed replaces an earlier one
        if (rec["experiment"] == source.experiment and rec["evaluator"] == source.evaluator
                and rec["scale"] == scale and rec["final"] and source.metric in rec["metrics"]
                and (seeds is None or rec["seed"] in seeds)):
            if rec["seed"] not in out or rec["created"] >= out[rec["seed"]]["created"]:
                out[rec["seed"]] = rec
    return out


def compute(table: Table, records: list, scale: str, seeds=None) -> Computed:
    seeds = tuple(seeds) if seeds else None
    cells, missing, fixture = {}, [], False
    for row in table.rows:
        for col, src in zip(table.cols, row.sources):
            cell = Cell()
            if src is not None and scale in row.scales:
                want = src.seeds or seeds  # a source made at fixed seeds (tables.Source.seeds) is read at those
                for seed, rec in sorted(select(records, src, scale, want).items()):
                    value = rec["metrics"][src.metric]
                    if isinstance(value, (int, float)):
                        cell.values[seed] = float(value)
                        cell.records.append(rec)
                        fixture |= bool(rec.get("extra", {}).get("fixture"))
                lacking = [s for s in want if s not in cell.values] if want else ([] if cell.n else ["any"])
                if lacking:
                    missing.append((row, col, src, lacking))
            cells[row.key, col.key] = cell
    return Computed(table, scale, seeds, cells, missing, fixture)


# ---- formatting ------------------------------------------------------------------------------------------------
def _decimals(table: Table) -> int:
    if table.decimals is not None:
        return table.decimals
    d = 1
    for row in table.rows:
        for p in row.paper:
            if isinstance(p, float) and not p.is_integer():
                d = max(d, len(repr(p).split(".")[1]))
    return min(d, 2)


def _fmt(x, d, signed=False):
    if x is None:
        return DASH
    s = f"{x:+.{d}f}" if signed else f"{x:.{d}f}"
    return s.replace("-", "−")


def _fmt_ours(cell: Cell, d, col: Col):
    if not cell.n:
        return DASH
    mean = f"{cell.mean:.3g}" if not col.compare else _fmt(cell.mean, d)
    if cell.std is not None:
        mean += f" ± {cell.std:.{d}f}"
    return f"{mean} (n={cell.n})"


def _paired(a: Cell, b: Cell):
    """Our delta a − b: paired over common seeds when there are any (mean ± std of differences), else means."""
    common = sorted(set(a.values) & set(b.values))
    if common:
        diffs = [a.values[s] - b.values[s] for s in common]
        return statistics.fmean(diffs), (statistics.stdev(diffs) if len(diffs) > 1 else None), len(diffs)
    if a.n and b.n:
        return a.mean - b.mean, None, 0
    return None, None, 0


def delta_rows(c: Computed):
    """[(label, column label, paper delta, our delta, our std, n paired)] for the table's key deltas."""
    t, out = c.table, []
    for dl in t.deltas:
        if dl.kind == "row":
            ra, rb = t.row(dl.a), t.row(dl.b)
            for i, col in enumerate(t.cols):
                if not col.compare:
                    continue
                pa, pb = ra.paper[i], rb.paper[i]
                pd = pa - pb if pa is not None and pb is not None else None
                ours, sd, n = _paired(c.cells[ra.key, col.key], c.cells[rb.key, col.key])
                out.append((f"{ra.label} − {rb.label}", col.label, pd, ours, sd, n))
        else:
            ia, ib = t.col_index(dl.a), t.col_index(dl.b)
            for row in t.rows:
                pa, pb = row.paper[ia], row.paper[ib]
                pd = pa - pb if pa is not None and pb is not None else None
                ours, sd, n = _paired(c.cells[row.key, dl.a], c.cells[row.key, dl.b])
                out.append((row.label, f"{t.cols[ia].label} − {t.cols[ib].label}", pd, ours, sd, n))
    return out


def _header_lines(c: Computed, records_desc: str):
    seeds = ",".join(map(str, c.seeds)) if c.seeds else "all recorded"
    lines = [SCALE_BANNER[c.scale], f"Seeds: {seeds}. Cells: paper | ours (mean ± sample std over n seeds) | "
             f"Δ = ours − paper. Unit: {c.table.unit}."]
    if c.fixture:
        lines.insert(0, "**WARNING: built from test fixture records, not from real runs.**")
    lines.append(f"Records: {records_desc}")
    return lines


def _provenance(c: Computed):
    shas = sorted({(r["git"].get("sha") or "unknown")[:10] + ("+dirty" if r["git"].get("dirty") else "")
                   for cell in c.cells.values() for r in cell.records})
    return shas


def to_markdown(c: Computed, records_desc: str = "") -> str:
    t, d = c.table, _decimals(c.table)
    out = [f"# {t.title}", ""] + [l + "  " for l in _header_lines(c, records_desc)] + [""]
    head = ["row"] + [f"{col.label}: {h}" for col in t.cols for h in (("paper", "ours", "Δ") if col.compare
                                                                       else ("paper", "ours"))]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in t.rows:
        cells = [row.label]
        for i, col in enumerate(t.cols):
            cell = c.cells[row.key, col.key]
            paper = row.paper[i]
            cells += [_fmt(paper, d) if col.compare else (DASH if paper is None else f"{paper:g}"),
                      _fmt_ours(cell, d, col)]
            if col.compare:
                cells.append(_fmt(cell.mean - paper, d, True) if cell.n and paper is not None else DASH)
        out.append("| " + " | ".join(cells) + " |")
    deltas = delta_rows(c)
    if deltas:
        out += ["", "## Key differences: the paper's delta beside ours", "",
                "| difference | column | paper | ours |", "|---|---|---|---|"]
        for label, col, pd, ours, sd, n in deltas:
            o = DASH if ours is None else _fmt(ours, d, True) + (f" ± {sd:.{d}f}" if sd is not None else "") + (
                f" (paired, n={n})" if n else " (unpaired means)")
            out.append(f"| {label} | {col} | {_fmt(pd, d, True)} | {o} |")
    if c.missing:
        out += ["", f"## Missing cells ({len(c.missing)}), filled by {t.filled_by}", ""]
        for row, col, src, lacking in c.missing:
            out.append(f"- {row.label} / {col.label}: no record of `{src.experiment}` · evaluator "
                       f"`{src.evaluator}` · metric `{src.metric}` at scale {c.scale}"
                       + (f" for seed(s) {', '.join(map(str, lacking))}" if lacking != ["any"] else "")
                       + (f" (an extra row: `make {t.name} EXTRA=1` runs it)" if row.extra else ""))
    if t.notes:
        out += ["", "Notes:"] + [f"- {n}" for n in t.notes]
    shas = _provenance(c)
    if shas:
        out += ["", f"Provenance: git {', '.join(shas)}; per-cell config hashes and record ids in the CSV."]
    return "\n".join(out) + "\n"


def _tex(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("−", "$-$"), ("Δ", r"$\Delta$"), ("→", r"$\to$"), ("×", r"$\times$"),
                 ("ε", r"$\varepsilon$"), ("·", r"$\cdot$"), ("—", "---")):
        s = s.replace(a, b)
    return s


def to_latex(c: Computed, records_desc: str = "") -> str:
    t, d = c.table, _decimals(c.table)
    spec = "l" + "".join("rrr" if col.compare else "rr" for col in t.cols)
    groups = " & ".join(rf"\multicolumn{{{3 if col.compare else 2}}}{{c}}{{{_tex(col.label)}}}" for col in t.cols)
    subs = " & ".join("paper & ours & $\\Delta$" if col.compare else "paper & ours" for col in t.cols)
    lines = [rf"% {_tex(t.title)} -- scale {c.scale}; generated by results/render.py, do not edit",
             r"\begin{tabular}{" + spec + "}", r"\toprule", f" & {groups} \\\\", f" & {subs} \\\\", r"\midrule"]
    for row in t.rows:
        cells = [_tex(row.label)]
        for i, col in enumerate(t.cols):
            cell, paper = c.cells[row.key, col.key], row.paper[i]
            cells += [_tex(_fmt(paper, d) if col.compare else (DASH if paper is None else f"{paper:g}")),
                      _tex(_fmt_ours(cell, d, col))]
            if col.compare:
                cells.append(_tex(_fmt(cell.mean - paper, d, True) if cell.n and paper is not None else DASH))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", f"% scale: {c.scale}; seeds: {c.seeds or 'all recorded'}"]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("table", "scale", "row", "row_label", "col", "col_label", "paper", "ours_mean", "ours_std", "n",
              "seeds", "delta_vs_paper", "experiment", "evaluator", "metric", "config_hashes", "git_shas",
              "record_ids", "fixture")


def to_csv(c: Computed) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for row in c.table.rows:
        for i, col in enumerate(c.table.cols):
            cell, src, paper = c.cells[row.key, col.key], row.sources[i], row.paper[i]
            w.writerow({
                "table": c.table.name, "scale": c.scale, "row": row.key, "row_label": row.label, "col": col.key,
                "col_label": col.label, "paper": "" if paper is None else paper,
                "ours_mean": "" if cell.mean is None else repr(round(cell.mean, 6)),
                "ours_std": "" if cell.std is None else repr(round(cell.std, 6)), "n": cell.n,
                "seeds": " ".join(map(str, cell.values)),
                "delta_vs_paper": repr(round(cell.mean - paper, 6)) if cell.n and paper is not None and col.compare
                else "",
                "experiment": src.experiment if src else "", "evaluator": src.evaluator if src else "",
                "metric": src.metric if src else "",
                "config_hashes": " ".join(sorted({r["config_hash"] for r in cell.records})),
                "git_shas": " ".join(sorted({(r["git"].get("sha") or "")[:10] for r in cell.records})),
                "record_ids": " ".join(r["record_id"] for r in cell.records),
                "fixture": int(any(r.get("extra", {}).get("fixture") for r in cell.records)),
            })
    return buf.getvalue()


def plot(c: Computed, records: list, path: Path) -> bool:
    """Draws a figure's plot to PNG; returns False (and writes nothing) when no record has data for it."""
    spec = c.table.plot
    if spec is None:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0), dpi=120)
    drawn = False
    if isinstance(spec, Curve):
        src = Source(spec.experiment, spec.evaluator, spec.x)
        for seed, rec in sorted(select(records, src, c.scale, c.seeds).items()):
            xs, ys = rec["metrics"].get(spec.x), rec["metrics"].get(spec.y)
            if isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys) and xs:
                (ax.step if spec.step else ax.plot)(xs, ys, label=f"ours ({c.scale}, seed {seed})", lw=1.5)
                drawn = True
        if spec.paper_points:
            px, py = zip(*spec.paper_points)
            ax.scatter(px, py, marker="x", color="k", zorder=5, label="paper (stated in text)")
    elif isinstance(spec, Scatter):
        levels = 0
        for row in c.table.rows:
            cx, cy = c.cells[row.key, spec.x], c.cells[row.key, spec.y]
            if cx.n and cy.n:
                ax.errorbar(cx.mean, cy.mean, xerr=cx.std or 0, yerr=cy.std or 0, fmt="o", capsize=3)
                ax.annotate(row.key, (cx.mean, cy.mean), textcoords="offset points", xytext=(4, 4), fontsize=8)
                drawn = True
            elif cy.n:  # a reference without an x value (Fig. 4: original labels, oracle maps): a level line
                levels += 1
                ax.axhline(cy.mean, ls=_LEVEL_STYLES[(levels - 1) % len(_LEVEL_STYLES)], lw=1, color="k",
                           label=f"{row.key}: {cy.mean:.1f}")
        ax.margins(x=0.12)  # room for the point labels at either end (Fig. 6's rightmost, FKD, was cut off)
    if not drawn:
        plt.close(fig)
        return False
    ax.set_xlabel(spec.xlabel)
    ax.set_ylabel(spec.ylabel)
    ax.set_title(f"{c.table.title.split(' — ')[0]} (scale {c.scale})", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return True


def smoke_banner(overrides: dict) -> str:
    """The first line of every file rendered from records of an overridden recipe (`results.make --set`)."""
    over = " ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return (f"SMOKE RUN — records made under --set {over}, not the paper's recipe: these numbers are not results "
            f"and are never read into the real tables or the claims ledger.")


def write_all(c: Computed, records: list, out_dir: Path, records_desc: str = "", banner: str = "") -> list:
    """Writes <name>.md/.tex/.csv (and .png for figures with data) under out_dir; returns the written paths.
    `banner` (a smoke run's, `smoke_banner`) becomes the first line of the .md, .tex (a comment) and .csv (a
    `#` line)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = c.table.name
    paths = []
    first = {"md": f"> **{banner}**\n\n", "tex": f"% {banner}\n", "csv": f"# {banner}\n"} if banner else {}
    for ext, text in (("md", to_markdown(c, records_desc)), ("tex", to_latex(c, records_desc)), ("csv", to_csv(c))):
        paths.append(R.write_text_atomic(out_dir / f"{name}.{ext}", first.get(ext, "") + text))
    png = out_dir / f"{name}.png"
    if plot(c, records, png):
        paths.append(png)
    elif png.exists():
        png.unlink()  # a stale plot from older records would contradict the table
    return paths

"""`make demo`: the main job — run the headline experiments at mini scale and render every table and figure.

Runs, through the launcher, whatever `DEMO_TARGETS` still lack (one seed by default), then renders all tables
and figures from the records that exist, and prints which tables are complete and where the files are. Cells
whose experiments are not built yet stay "—" and are listed with the issue that fills them.
"""
from __future__ import annotations

import argparse
import sys

from relabel import records as R
from results import make, tables

DEMO_TARGETS = ("fig2", "table2", "table3")
# `make demo` from scratch on 2 idle cores, JOBS=2, by CPU class: measured, not promised. These were measured
# when the demo still trained the annotator (~8 of the minutes); it is published now (issue 15), not yet re-timed.
EXPECTED_MINUTES = {"bf16-native": ("~9", "8 min 35 s on a fresh clone, 2026-11-27"),
                    "AVX2": ("~18-50", "17 min 51 s emulated on an AVX-512 EPYC, 2026-11-27; ~50 min on a real AVX2 "
                             "EPYC before channels-last, issue 17")}


def expected_time(cpu_class: str, bf16: bool) -> str:
    """One line: the CPU class the mini timings depend on, the precision training will use, and how long the demo
    took on that class here."""
    line = f"CPU class: {cpu_class}, training in {'bf16 autocast' if bf16 else 'fp32'}"
    if (cpu_class == "bf16-native") != bf16:
        return line + " (RELABEL_CPU_BF16 overrides the default; no demo timing measured for this combination)"
    if cpu_class not in EXPECTED_MINUTES:
        return line + "; no demo timing measured for this CPU class yet"
    minutes, how = EXPECTED_MINUTES[cpu_class]
    return line + f"; expected {minutes} min on 2 cores ({how})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m results.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="mini", choices=R.SCALES)
    ap.add_argument("--seeds", help="comma-separated seeds (default 0)")
    ap.add_argument("--jobs", type=int, default=1, help="runs to execute at once (default 1)")
    a = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    try:
        seeds = make.parse_seeds(a.seeds)
    except make.UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from relabel.train import cpu_bf16_enabled, cpu_class
    print(f"== running the demo targets ({', '.join(DEMO_TARGETS)}) at scale {a.scale}")
    if a.scale == "mini":
        print(f"== {expected_time(cpu_class(), cpu_bf16_enabled())}")
    # with Table 2's oracle row (an extra row): at mini scale it is what shows LabelPooling's effect
    make.make(DEMO_TARGETS, a.scale, seeds, jobs=a.jobs, extra_rows=True)
    print("== rendering every table and figure from the records that exist")
    summary = []
    make.make(tables.TARGETS, a.scale, seeds, run=False, summary=summary, log=lambda *_: None)
    width = max(len(n) for n, *_ in summary)
    print(f"\n{'target':<{width}}  cells with our numbers")
    for name, filled, total, path in summary:
        print(f"{name:<{width}}  {filled:>3}/{total:<3}  {path}")
    print(f"\nRendered tables (Markdown, LaTeX, CSV; PNG for figures): {make.RENDER_ROOT / a.scale}")
    print("Each table lists its missing cells and the issue/target that fills them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

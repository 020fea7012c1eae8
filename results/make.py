"""`python -m results.make TARGET...`: run what a table's missing cells need, then render it (the make targets).

For each target it reads the run records of the scale (runs/records/<scale>.jsonl and the committed
results/records/<scale>.jsonl, see results.publish), lists the (experiment, seed) jobs whose records are missing,
runs the registered ones through `relabel.launch`, and renders the table to results/rendered/<scale>/. A job whose
experiment is not registered yet is named with the issue that fills it, and the command exits non-zero; the table
is still rendered with "—" in those cells, never with invented values. A cell asked for that still has no record
after the runs (`--no-run`, an extra row under `--extra-rows`) is named and the exit status is 4, unless
`--allow-missing`.

Runs under `--set` (smoke runs) write records that carry their overrides; they render to
results/rendered/<scale>/smoke/ with a banner line, and only there: the real tables (and `results.publish`, hence
the claims ledger) read only records without overrides.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from relabel import dist, launch
from relabel import records as R
from relabel.configs import add_set_argument
from results import render, tables
from results.publish import published_records_path

RENDER_ROOT = Path(__file__).resolve().parent / "rendered"
DEFAULT_SEEDS = (0,)


RUN_ERRORS = launch.user_errors()


class UsageError(Exception):
    """Bad input from the user: printed as one sentence, exit status 2."""


PLAN_SEEDS = "plan"  # --seeds plan: each table at the seeds the committed plan gives it (docs/statistics-plan.md)


def parse_seeds(text: str | None):
    if not text:
        return None
    if text.strip() == PLAN_SEEDS:
        return PLAN_SEEDS
    try:
        return tuple(int(s) for s in text.replace(" ", "").split(",") if s != "")
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers like 0,1,2, or 'plan', got '{text}'") from None


def table_seeds(name: str, seeds):
    """The seeds to run table `name` at: `seeds` as given, or under --seeds plan 0 … n−1 with n the table's planned
    seeds (results.claims.PLAN; a table without claims, e.g. fig2, runs at the default seed)."""
    if seeds != PLAN_SEEDS:
        return seeds
    from results import claims as C
    n = C.planned_seeds(name)
    return tuple(range(n)) if n else DEFAULT_SEEDS


def set_overrides(items, scale: str) -> dict:
    """Parses `--set key=value` options, checks them against the pretraining recipe of `scale` and makes them this
    process's overrides (relabel.configs.active_overrides): every run of this process reads them, the worker pool
    gets them as an argument (run_jobs), torchrun ranks parse the same command line."""
    from pretrain.config import apply_set, get_config
    from relabel.configs import ConfigError, use_overrides
    try:
        return use_overrides(items, lambda over: apply_set(get_config(scale), over))
    except ConfigError as e:
        raise UsageError(str(e)) from None


def load_records(paths, overrides=None):
    """The records of `paths` made under `overrides` (default: the `--set` of this process; {} = the real recipe's
    only). A damaged line, or a file that repeats a record (R.duplicates), is a UsageError naming file:line."""
    over = R.active_overrides() if overrides is None else overrides
    try:
        recs = R.read_many(paths)
        for p in paths:
            if (dup := R.duplicates(p)) is not None:
                raise UsageError(dup)
    except R.RecordError as e:
        raise UsageError(str(e)) from None
    return [r for r in recs if R.overrides_of(r) == over]


def render_dir(out_root, scale: str) -> Path:
    """results/rendered/<scale>/, or its smoke/ subfolder under `--set` (smoke runs never overwrite real tables)."""
    return Path(out_root) / scale / ("smoke" if R.active_overrides() else "")


def missing_sources(computed: render.Computed, seeds, extra_rows: bool = False):
    """(source, seed) pairs the table lacks; the cells of extra rows (tables.Row.extra) only when asked."""
    out = []
    for row, _col, src, lacking in computed.missing:
        if row.extra and not extra_rows:
            continue
        for seed in (seeds if lacking == ["any"] else lacking):
            out.append((src, seed))
    return out


def merge_jobs(jobs) -> list:
    """One job per (experiment, seed), with the union of the evaluators the targets asked it for."""
    merged: dict = {}
    for j in jobs:
        k = (j.experiment, j.seed)
        merged[k] = j if k not in merged else launch.Job(j.experiment, j.seed, merged[k].evaluators | j.evaluators,
                                                         j.registered)
    return list(merged.values())


def _run_one(job, scale, records_path, threads, overrides):
    """One job in a worker process (spawned: a clean interpreter, its own registry, `threads` torch threads, the
    driver's `--set` overrides handed over as an argument)."""
    import torch
    from relabel.configs import set_active_overrides
    torch.set_num_threads(threads)
    set_active_overrides(overrides)
    t0 = time.time()
    launch.run_job(job, scale, records_path, launch.discover())
    return time.time() - t0


def run_jobs(todo, scale, records_path, registry, jobs, log, name):
    """Runs jobs one after another, or `jobs` at a time in worker processes (shared artifacts are file-locked)."""
    if jobs <= 1 or len(todo) == 1:
        for i, job in enumerate(todo, 1):
            log(f"[{name} {i}/{len(todo)}] {job.experiment} seed={job.seed} ({', '.join(sorted(job.evaluators))})")
            t0 = time.time()
            launch.run_job(job, scale, records_path, registry)
            log(f"  done in {time.time() - t0:.0f}s")
        return
    import concurrent.futures as cf
    import multiprocessing as mp
    todo = launch.order_for_parallel(todo, registry)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"[{name}] {len(todo)} runs, {jobs} at a time ({threads} thread(s) each)")
    with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        def stop(signum, _frame):  # a killed driver takes its workers with it (runs resume from checkpoints)
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
            raise SystemExit(128 + signum)
        previous = signal.signal(signal.SIGTERM, stop)
        try:
            over = R.active_overrides()
            futures = {pool.submit(_run_one, job, scale, records_path, threads, over): job for job in todo}
            for i, fut in enumerate(cf.as_completed(futures), 1):
                job = futures[fut]
                log(f"[{name} {i}/{len(todo)}] {job.experiment} seed={job.seed} done in {fut.result():.0f}s")
        finally:
            signal.signal(signal.SIGTERM, previous)


def make(targets, scale="mini", seeds=None, dry_run=False, record_paths=(), out_root=RENDER_ROOT,
         log=print, run=True, summary=None, jobs=1, extra_rows=False, published=True, only=None,
         allow_missing=True) -> int:
    """Runs and renders targets; returns the exit status (0 all done, 3 some experiments not registered, 4 a cell
    asked for has no record after the runs and allow_missing is False — the CLI's default).

    Raises UsageError for an unknown target, a missing records file or a damaged record.

    With run=False nothing is executed and missing cells are only listed (the demo renders every table so).
    `summary`, if a list, receives (name, filled cells, total cells, markdown path) per target.
    `extra_rows` also runs the rows beyond the paper's (tables.Row.extra), e.g. Table 2's oracle row.
    `published=False` ignores the committed records (results/records/<scale>.jsonl), so the cells they fill run
    again here (the demo re-runs its experiments on the reader's machine); `only`, a set of experiment ids, runs
    only those (the other missing cells are rendered as '—').
    """
    specs = []
    for name in targets:
        try:
            specs.append(tables.get(name))
        except tables.UnknownTable as e:
            raise UsageError(e.args[0]) from None
    main_records = R.default_records_path(scale)  # new runs append here; the committed records are read too
    paths = [*([published_records_path(scale)] if published else []), main_records, *map(Path, record_paths)]
    for p in record_paths:
        if not Path(p).is_file():
            raise UsageError(f"records file '{p}' does not exist")
    registry = launch.discover()
    status = 0
    warned = set()

    def current():
        recs, stale = launch.current_records(load_records(paths), registry)
        if stale and stale not in warned:
            warned.add(stale)
            log(f"({stale} record(s) come from an earlier recipe of their experiment or were evaluated on earlier "
                f"test sets, and are ignored)")
        return recs

    plans, before = {}, current()
    for spec in specs:
        run_seeds = table_seeds(spec.name, seeds) or DEFAULT_SEEDS
        computed = render.compute(spec, before, scale, run_seeds if seeds == PLAN_SEEDS else seeds)
        wanted = [(src, seed) for src, seed in missing_sources(computed, run_seeds, extra_rows)
                  if only is None or src.experiment in only]
        plans[spec.name] = launch.plan(wanted, registry)
        if dry_run:
            todo = [j for j in plans[spec.name] if j.registered]
            absent = [j for j in plans[spec.name] if not j.registered]
            log(f"{spec.name} [{scale}]: {len(todo)} run(s) to execute, {len(absent)} not registered yet")
            for j in todo:
                log(f"  run  {j.experiment}  seed={j.seed}  evaluators={','.join(sorted(j.evaluators))}")
            for j in absent:
                log(f"  MISSING  {j.experiment}  seed={j.seed}  evaluators={','.join(sorted(j.evaluators))}  "
                    f"(not registered yet; filled by {spec.filled_by})")
            if not plans[spec.name]:
                log("  all cells have records; nothing to run")
    if dry_run:
        return status
    dist.init_distributed()
    dist.barrier()  # under torchrun every rank has planned from the same records before rank 0 writes new ones
    # One pool for all the targets' runs (a run two tables need runs once, with both tables' evaluators), so
    # the workers stay busy across table boundaries.
    todo = merge_jobs([j for p in plans.values() for j in p if j.registered])
    if run and todo:
        run_jobs(todo, scale, main_records, registry, jobs, log, "+".join(plans))
    if not dist.is_main():
        return status  # under torchrun, rank 0 renders and reports
    records = current()
    over = R.active_overrides()
    banner = render.smoke_banner(over) if over else ""
    lacking_cells = []
    for spec in specs:
        shown = None if seeds == PLAN_SEEDS else seeds  # under the plan a table shows every seed recorded
        computed = render.compute(spec, records, scale, shown)
        desc = ", ".join(str(p) for p in paths if Path(p).exists()) or "none yet"
        if over:
            desc = f"only the records made under this --set, from {desc}"
        written = render.write_all(computed, records, render_dir(out_root, scale), desc, banner=banner)
        ours = [computed.cells[r.key, c.key] for r in spec.rows for c, s in zip(spec.cols, r.sources) if s]
        filled = sum(c.n > 0 for c in ours)
        log(f"{spec.name}: {filled}/{len(ours)} cells filled → {written[0]}")
        if summary is not None:
            summary.append((spec.name, filled, len(ours), written[0]))
        run_seeds = table_seeds(spec.name, seeds) or DEFAULT_SEEDS
        if seeds == PLAN_SEEDS:
            computed = render.compute(spec, records, scale, run_seeds)
        asked = {(src, seed) for src, seed in missing_sources(computed, run_seeds, extra_rows)
                 if only is None or src.experiment in only}
        lacking_cells += [(spec, row, col) for row, col, src, _ in computed.missing
                          if any(a[0] == src for a in asked) and (not row.extra or extra_rows)]
        absent = [j for j in plans[spec.name] if not j.registered]
        if absent and run:
            status = 3
            names = sorted({j.experiment for j in absent})
            log(f"{spec.name}: {len(names)} experiment(s) not registered yet, filled by {spec.filled_by}: "
                + ", ".join(names))
    if lacking_cells and not allow_missing:
        print(f"error: {len(lacking_cells)} cell(s) asked for have no record: {_cells_text(lacking_cells)}; run them "
              f"({'drop --no-run' if not run else 'see the runs above'}) or pass --allow-missing to render anyway",
              file=sys.stderr)
        status = status or 4
    return status


def _cells_text(cells) -> str:
    """`table3/relabel/{val,v2,real,shankar}`-style groups of (table, row, col) cells, in the tables' order."""
    groups: dict = {}
    for spec, row, col in cells:
        note = " (extra row)" if row.extra else ""
        groups.setdefault((spec.name, row.key, note), []).append(col.key)
    return ", ".join(f"{t}/{r}/{cols[0] if len(cols) == 1 else '{' + ','.join(cols) + '}'}{note}"
                     for (t, r, note), cols in groups.items())


def list_experiments(targets=(), scale="mini", seeds=None, record_paths=(), log=print) -> int:
    """`--list`: every experiment id of `targets` (no targets: of every table and figure, and every registered
    experiment), the cells it fills, the seeds at which all those cells have a current record at `scale`, and
    whether those cover the seeds asked for (--seeds, default 0). Reads records and recipes only: it trains,
    builds and downloads nothing."""
    specs = []
    for name in targets or tables.ALL:
        try:
            specs.append(tables.get(name))
        except tables.UnknownTable as e:
            raise UsageError(e.args[0]) from None
    for p in record_paths:
        if not Path(p).is_file():
            raise UsageError(f"records file '{p}' does not exist")
    registry = launch.discover()
    paths = [published_records_path(scale), R.default_records_path(scale), *map(Path, record_paths)]
    records = [r for r in load_records(paths) if r["scale"] == scale]  # (under --set: that --set's records)
    current, _ = launch.current_records(records, registry)
    want_seeds = DEFAULT_SEEDS if seeds == PLAN_SEEDS else tuple(seeds or DEFAULT_SEEDS)
    cells: dict = {}  # experiment -> [(spec, row, col, source)], in the tables' order
    for spec in specs:
        for row in spec.rows:
            for col, src in zip(spec.cols, row.sources):
                if src is not None and scale in row.scales:
                    cells.setdefault(src.experiment, []).append((spec, row, col, src))
    if not targets:  # registered experiments no table reads (e.g. the COCO annotator's own mAP)
        for exp_id in sorted(set(registry) - set(cells)):
            cells[exp_id] = []
    lines = []
    for exp_id, where in cells.items():
        # no cell (an experiment no table reads): the seeds with any current record of it
        per_cell = [set(render.select(current, src, scale)) for *_, src in where] or [
            {r["seed"] for r in current if r["experiment"] == exp_id}]
        recorded = set.intersection(*per_cell)
        partly = set.union(*per_cell) - recorded
        seeds_text = ",".join(map(str, sorted(recorded))) or "—"
        if partly:
            seeds_text += f" ({','.join(map(str, sorted(partly)))} partly)"
        have = [set(render.select(current, src, scale)) for *_, src in where]
        if seeds is None and not any(src.seeds for *_, src in where):
            # as `make` without --seeds: a cell holding a record at any seed is filled
            lacking = [] if (all(have) if where else recorded) else ["any"]
        else:
            lacking = sorted({s for (spec, *_, src), got in zip(where, have)
                              for s in (src.seeds or table_seeds(spec.name, seeds) or want_seeds)
                              if s not in got} if where else set(want_seeds) - recorded)
        stale = sum(r["experiment"] == exp_id for r in records) - sum(r["experiment"] == exp_id for r in current)
        state = ("yes" if not lacking else "no: no record" if lacking == ["any"]
                 else f"no: seed {','.join(map(str, lacking))}")
        if exp_id not in registry:
            state += ", not registered"
        if stale:
            state += f" ({stale} stale)"
        lines.append((exp_id, seeds_text, state,
                      _cells_text((s, r, c) for s, r, c, _ in where) or "— (no table reads it)"))
    head = ("experiment", "seeds recorded",
            "current (any seed)" if seeds is None else "current (planned seeds)" if seeds == PLAN_SEEDS
            else f"current (seeds {','.join(map(str, want_seeds))})", "cells")
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(3)]
    log(f"{len(lines)} experiment(s) of {', '.join(s.name for s in specs)} at scale {scale}; records: "
        f"{', '.join(str(p) for p in paths if p.exists()) or 'none yet'}")
    for line in [head, *lines]:
        log("  ".join(x.ljust(w) for x, w in zip(line, widths)) + "  " + line[3])
    return 0


def check_launch(scale: str, jobs: int) -> None:
    """Full scale: runs go one after another, each over every GPU under torchrun — never several jobs sharing
    GPU 0. A plain process on a machine with several GPUs gets a note on how to use them."""
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1 (runs to execute at once), got {jobs}")
    if scale != "full":
        return
    if jobs > 1:
        raise UsageError(f"at full scale runs execute one after another, each across the GPUs under torchrun; "
                         f"--jobs {jobs} would put {jobs} runs on GPU 0 (drop --jobs / JOBS=; `make ... SCALE=full` "
                         f"launches torchrun over every visible GPU)")
    import torch
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if dist.world_size() == 1 and n > 1:
        print(f"note: {n} GPUs are visible but this is one process, so every run uses GPU 0; launch with "
              f"`torchrun --standalone --nproc_per_node={n} -m results.make ...` (what `make ... SCALE=full` does)",
              file=sys.stderr)


ENV_HELP = """environment variables:
  RELABEL_RUNS              where runs, checkpoints and records live (default: <repo>/runs)
  RELABEL_DATA              mini: where the mini world is generated (default: <repo>/data)
  RELABEL_PUBLISHED         where the committed results live (default: <repo>/results); its records/<scale>.jsonl
                            is read besides runs/records/ (python -m results.publish writes it)
  RELABEL_CKPT_MINUTES      training saves its checkpoint at least this often, besides its step interval
                            (default 5; changes no recipe)
full scale (docs/full-scale.md has the data tree):
  IMAGENET_ROOT             ImageNet with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, and beside them the
                            evaluation sets tables 3/7 read: imagenetv2/, shankar/, imagenet-a/, imagenet-c/,
                            bg_challenge/
  RELABEL_OFFICIAL_MAPS     the official label-map release (imagenet_efficientnet_l2_sz475_top5/), imported
  RELABEL_ANNOTATOR_CKPT    or: an annotator checkpoint of ours (python -m relabel.checkpoint convert ...)
  RELABEL_ANNOTATOR_CKPT_<NAME>  Fig. 4/6's other annotators (W025, W05, E2, E6)
  RELABEL_CLEAN_LIST        Beyer et al.'s fnames_clean.txt (Table 3's label-cleaning row)
  IMAGENET21K_ROOT          Table 5's extra images, in class folders
  IMAGENET_VAL_BOXES        ImageNet val bounding-box XML folder (Fig. 2)
  COCO_ROOT                 COCO 2017 (Tables 9, 10); <TASK>_ROOT: Table 8's fine-grained sets
  RELABEL_COCO_INIT_RESNET50, RELABEL_COCO_INIT_RESNET101   Table 10's ImageNet init, a local weights file
  RELABEL_COCO_ANNOTATOR_CKPT, RELABEL_COCO_ANNOTATOR_ARCH  Table 10's machine annotator
example (a smoke run on a fake tree in the real layouts):
  eval "$(python -m relabel.data.fakefull --out /tmp/fakefull)"
  python -m results.make table2 --scale full --set epochs=1 --set batch_size=8 --set input_size=32 --set workers=0
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m results.make", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=ENV_HELP,
        description="Run the experiments a paper table or figure needs (only cells without records) and render it "
                    "as Markdown, LaTeX and CSV (+ PNG for figures) under results/rendered/<scale>/.")
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help=f"table/figure names: {', '.join(tables.TARGETS)} (or 'costs')")
    ap.add_argument("--list", action="store_true",
                    help="list every experiment id of the targets (or of all tables and figures), the cells it "
                         "fills and whether current records exist at --scale/--seeds; runs and builds nothing")
    ap.add_argument("--scale", default="mini", choices=R.SCALES,
                    help="mini = bundled miniature world on CPU (default); full = real datasets on GPUs")
    ap.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default: run seed 0, show all recorded), or "
                                    "'plan': each table at its planned seeds (docs/statistics-plan.md)")
    ap.add_argument("--dry-run", action="store_true", help="list the runs that would execute and stop")
    ap.add_argument("--records", action="append", default=[], metavar="JSONL",
                    help="extra record files to read besides runs/records/<scale>.jsonl and the committed "
                         "results/records/<scale>.jsonl (e.g. fixtures); new runs still append to runs/records/")
    ap.add_argument("--out", default=str(RENDER_ROOT), help="render root (default results/rendered)")
    ap.add_argument("--jobs", type=int, default=1, help="runs to execute at once, each in its own process "
                    "with cores/jobs threads (default 1; must be 1 at full scale, where torchrun spreads each "
                    "run over the GPUs)")
    add_set_argument(ap, "the pretraining recipe of every run (Tables 2-7, Figs. 2, 4-6 and the backbones Tables 8-10 "
                     "start from; their own fine-tuning takes `python -m transfer` / `python -m multilabel_coco "
                     "--set`)", "--set epochs=1 --set batch_size=8 --set input_size=64 --set workers=0", records=True)
    ap.add_argument("--extra-rows", action="store_true",
                    help="also run the rows beyond the paper's (e.g. Table 2's mini-only oracle row); they are "
                         "rendered whenever their records exist")
    ap.add_argument("--no-run", action="store_true",
                    help="render from the records there are, running nothing (missing cells stay '—'; exit 4 "
                         "naming them unless --allow-missing)")
    ap.add_argument("--allow-missing", action="store_true",
                    help="exit 0 when cells asked for have no record (they render as '—'); default: exit 4 and "
                         "name them")
    a = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach a log file as they happen
    log = print if dist.is_main() else (lambda *_a, **_k: None)
    try:
        if a.list:  # (under --set, the records of that recipe are the current ones)
            set_overrides(a.set, a.scale)
            return list_experiments(a.targets, a.scale, parse_seeds(a.seeds), a.records, log=log)
        if not a.targets:
            raise UsageError(f"name at least one TARGET ({', '.join(tables.TARGETS)}), or use --list")
        check_launch(a.scale, a.jobs)
        set_overrides(a.set, a.scale)
        return make(a.targets, a.scale, parse_seeds(a.seeds), a.dry_run, a.records, Path(a.out), jobs=a.jobs,
                    run=not a.no_run, extra_rows=a.extra_rows, log=log, allow_missing=a.allow_missing)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RUN_ERRORS as e:  # a run stopped on a problem the user can fix: one sentence, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

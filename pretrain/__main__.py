"""`python -m pretrain ARCH ROW`: train one pretraining cell by hand, through the launcher, and write its records.

`make TABLE` runs the cells a table lacks; this runs one (architecture, row) of pretrain/config.py at one seed —
a table's cell (pretrain.experiments.TARGETS) or any other pair — exactly as `make` would: in its workdir
runs/<scale>/pretrain/<ARCH>/<ROW>/seed<N> (resuming it if killed, setting aside the files of an earlier
recipe), its records appended to runs/records/<scale>.jsonl. Examples:

    python -m pretrain resnet50 relabel --seed 1
    python -m pretrain resnet18 label_smoothing --eval val,real
    python -m pretrain resnet50 original --set epochs=1 --set batch_size=32

`--set` overrides the recipe as `results.make --set` does (its records carry the changed recipe, so they never
count for the real one).
"""
from __future__ import annotations

import argparse
import sys


def _row_text(spec) -> str:
    """What a row of pretrain.config.ROWS trains on, in a few words (its label source's own, then the row's)."""
    from relabel.labels import source_class
    t = spec.train
    parts = [source_class(spec.label).describe(t)]
    if spec.uses_store:
        if (spec.store_dtype, spec.store_k) != ("float32", 5) and not spec.label_args:
            parts.append(f"{spec.store_dtype} top-{spec.store_k}")
        parts += [f"{k} {v}" for k, v in spec.label_args.items()]
        if spec.annotator != "default":
            parts.append(f"annotator {spec.annotator}")
    if spec.teacher:
        parts.append(f"teacher {spec.teacher}")
    if t.get("cutmix_prob"):
        parts.append("CutMix")
    if spec.clean:
        parts.append("label-cleaned subset")
    if spec.extra:
        parts.append("+ the extra split re-labelled")
    return ", ".join(parts)


def _epilog(archs, rows, targets) -> str:
    cells = {}
    for exp_id in targets:
        _, arch, row = exp_id.split("/")
        cells.setdefault(row, []).append(arch)
    width = max(map(len, rows))
    every = len(archs)
    lines = ["architectures (ARCH; timm models, narrower and shallower at mini):", "  " + ", ".join(archs), "",
             "rows (ROW; pretrain/config.py ROWS) and the architectures whose cell a table reads:"]
    for row, spec in rows.items():
        mine = cells.get(row, [])
        where = "every ARCH" if len(mine) == every else ", ".join(mine) or "none"
        lines.append(f"  {row.ljust(width)}  {_row_text(spec)}  [a table's cell: {where}]")
    return "\n".join(lines + ["", "evaluators (--eval): val (always), " + ", ".join(
        e for e in _evaluator_names() if e != "val") + ", or all"])


def _evaluator_names() -> tuple:
    from pretrain.experiments import TARGET_EVALUATORS
    return TARGET_EVALUATORS


def parse_evaluators(text: str) -> frozenset:
    """`--eval val,real` → the evaluators whose records the run writes ('all': every one a target can write)."""
    from relabel.configs import ConfigError
    known = _evaluator_names()
    names = [n for n in text.replace(" ", "").split(",") if n]
    if names == ["all"]:
        return frozenset(known)
    bad = [n for n in names if n not in known]
    if bad:
        raise ConfigError(f"unknown evaluator(s) {bad} in --eval; known: {', '.join(known)}, or all")
    return frozenset(names) | {"val"}


def main(argv=None) -> int:
    from pretrain import experiments as X
    from pretrain.config import ARCHS, ROWS, apply_set, get_config
    from relabel import dist, launch
    from relabel import records as R
    from relabel.configs import ConfigError, add_set_argument, use_overrides

    ap = argparse.ArgumentParser(prog="python -m pretrain", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=_epilog(ARCHS, ROWS, X.TARGETS))
    ap.add_argument("arch", metavar="ARCH", choices=tuple(ARCHS), help="architecture (listed below)")
    ap.add_argument("row", metavar="ROW", choices=tuple(ROWS), help="label source of the row (listed below)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    ap.add_argument("--scale", default="mini", choices=R.SCALES,
                    help="mini = bundled miniature world on CPU (default); full = real datasets on GPUs")
    ap.add_argument("--eval", default="val", metavar="NAMES",
                    help="comma-separated evaluators to write records for (default val; 'all': every one)")
    add_set_argument(ap, "the run's training recipe (as results.make --set)", "--set epochs=1 --set batch_size=32",
                     records=True)
    a = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach a log file as they happen
    say = print if dist.is_main() else (lambda *_a, **_k: None)
    exp_id = X.target_id(a.arch, a.row)
    records = R.default_records_path(a.scale)
    try:
        evaluators = parse_evaluators(a.eval)
        use_overrides(a.set, lambda over: apply_set(get_config(a.scale), over))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    registry = launch.discover()
    if exp_id not in registry:
        say(f"note: {exp_id} is not a cell of any table (pretrain.experiments.TARGETS): its records are written, "
            "and no table reads them")
        registry = {**registry, exp_id: X.target_experiment(a.arch, a.row)}
    before = len(R.read(records))
    say(f"{exp_id} seed={a.seed} scale={a.scale} ({', '.join(sorted(evaluators))})")
    try:
        launch.run_job(launch.Job(exp_id, a.seed, evaluators, True), a.scale, records, registry)
    except launch.user_errors() as e:  # a cause the user can fix: one sentence, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    new = [rec for rec in R.read(records)[before:] if (rec["experiment"], rec["seed"]) == (exp_id, a.seed)]
    for rec in new:
        scalars = {k: round(v, 4) for k, v in rec["metrics"].items() if isinstance(v, (int, float))}
        say(f"  {rec['evaluator']}: " + ", ".join(f"{k}={v}" for k, v in list(scalars.items())[:6]))
    # (a second process that waited on the run's lock and skipped shows the records the first one wrote)
    say(f"{len(new)} record(s) of this run in {records}" if new else f"no new record in {records}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The experiment launcher: one registry mapping experiment ids to the code that produces their records.

Section folders (`pretrain/`, `eval_real/`, ...) register experiments in their `experiments.py` with
`@register(...)`; `results.make` asks the registry to run whatever a table's missing cells need. An experiment is
a config at a scale; its run function receives a `RunContext` (scale, seed, which evaluators' records are missing,
where to write records and files) and appends one record per evaluator with `relabel.records.append`. Runs must be
resumable: a run killed half-way and started again continues from its own checkpoints in `ctx.workdir`.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from relabel import records as R

# Modules that register experiments. Imported lazily by `discover()`; a section that does not exist yet is skipped.
SECTION_MODULES = ("pretrain.experiments", "eval_real.experiments", "robustness.experiments",
                   "transfer.experiments", "multilabel_coco.experiments")


@dataclass(frozen=True)
class RunContext:
    experiment: str
    scale: str
    seed: int
    evaluators: frozenset  # evaluators whose records are missing; the run may write others too
    records: Path  # the JSONL file to append to
    workdir: Path  # runs/<scale>/<experiment>/seed<seed>: checkpoints, label stores, logs

    @property
    def main_rank(self) -> bool:
        """False on the non-zero ranks of a `torchrun` launch: only rank 0 writes records and checkpoints."""
        return int(os.environ.get("RANK", "0")) == 0

    def append(self, record: dict) -> None:
        if self.main_rank:
            R.append(self.records, record)


@dataclass(frozen=True)
class Experiment:
    id: str
    evaluators: frozenset
    run: Callable[[RunContext], None]
    doc: str = ""
    needs: tuple = ()  # shared artifacts the run builds or waits for (e.g. 'annotator'), for job ordering
    # recipe(scale, seed) -> the dict the run writes as record["config"]["train"]; records written under another
    # recipe (the config changed since) are stale: `make` ignores them and runs the cell again.
    recipe: Callable[[str, int], dict] | None = None

    def is_current(self, rec: dict) -> bool:
        if self.recipe is None:
            return True
        try:
            want = self.recipe(rec["scale"], rec["seed"])
        except Exception:  # a scale this experiment cannot configure here (e.g. full without its env): keep
            return True
        return rec.get("config", {}).get("train") == _as_stored(want)


_REGISTRY: dict[str, Experiment] = {}
_DISCOVERED = False


def register(experiment_id: str, evaluators, doc: str = "", needs=(), recipe=None):
    """Decorator: `fn(ctx)` produces records of `evaluators` for `experiment_id`; see Experiment.recipe."""
    def deco(fn):
        if experiment_id in _REGISTRY and _REGISTRY[experiment_id].run is not fn:
            raise ValueError(f"experiment '{experiment_id}' is registered twice")
        _REGISTRY[experiment_id] = Experiment(experiment_id, frozenset(evaluators), fn, doc or (fn.__doc__ or ""),
                                              tuple(needs), recipe)
        return fn
    return deco


def current_records(records: list, registry: dict) -> tuple[list, int]:
    """(the records written under each experiment's current recipe, how many stale ones were dropped)."""
    keep = [r for r in records if r["experiment"] not in registry or registry[r["experiment"]].is_current(r)]
    return keep, len(records) - len(keep)


def discover() -> dict[str, Experiment]:
    """Imports every section's experiments module once and returns the registry."""
    global _DISCOVERED
    if not _DISCOVERED:
        for name in SECTION_MODULES:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as e:
                if e.name not in (name, name.split(".")[0]):  # a real missing dependency inside the module
                    raise
        _DISCOVERED = True
    return dict(_REGISTRY)


def runs_root() -> Path:
    return Path(os.environ.get("RELABEL_RUNS", R.REPO_ROOT / "runs"))


def workdir(experiment_id: str, scale: str, seed: int) -> Path:
    return runs_root() / scale / experiment_id / f"seed{seed}"


@dataclass(frozen=True)
class Job:
    """One experiment at one seed, with the evaluators whose records a table still lacks."""
    experiment: str
    seed: int
    evaluators: frozenset
    registered: bool


def plan(missing_sources: list, registry: dict) -> list[Job]:
    """Groups missing (source, seed) pairs into one job per (experiment, seed)."""
    want: dict = {}
    for src, seed in missing_sources:
        want.setdefault((src.experiment, seed), set()).add(src.evaluator)
    return [Job(e, s, frozenset(ev), e in registry) for (e, s), ev in sorted(want.items())]


def order_for_parallel(jobs: list[Job], registry: dict) -> list[Job]:
    """Job order for parallel workers: one builder per shared artifact first, then the jobs that need nothing
    (they fill the other workers while the artifact is built), then the rest (which find it ready)."""
    first, free, rest, seen = [], [], [], set()
    for j in jobs:
        needs = registry[j.experiment].needs
        if not needs:
            free.append(j)
        elif not set(needs) <= seen:
            seen |= set(needs)
            first.append(j)
        else:
            rest.append(j)
    return first + free + rest


def run_job(job: Job, scale: str, records_path: Path, registry: dict) -> None:
    exp = registry[job.experiment]
    unknown = job.evaluators - exp.evaluators
    if unknown:
        raise ValueError(f"experiment '{job.experiment}' cannot produce evaluator(s) {sorted(unknown)}; "
                         f"it produces {sorted(exp.evaluators)}")
    wd = workdir(job.experiment, scale, job.seed)
    wd.mkdir(parents=True, exist_ok=True)
    with artifact_lock(wd / "job"):  # two drivers asking for the same run: the second waits, then resumes it
        want = recipe_hash(exp, scale, job.seed)
        stamped = stamped_recipe(wd)
        if want is not None and stamped is not None and stamped != want:
            for p in wd.iterdir():  # the files of the earlier recipe, kept beside as `<name>.stale-<hash>`
                if not p.name.endswith(".lock") and ".stale-" not in p.name:
                    set_aside(p, stamped)
            print(f"{wd} held files of an earlier recipe ({stamped}): set aside, running afresh", flush=True)
        exp.run(RunContext(job.experiment, scale, job.seed, job.evaluators, records_path, wd))
        if want is not None:
            _stamp(wd, exp, scale, job.seed, want)


# A run's workdir says which recipe its files (checkpoints, model.safetensors) were made under, so a later recipe
# never silently reuses them: run_job sets a stale workdir's files aside (`set_aside`), ensure_checkpoint retrains.
RECIPE_STAMP = "recipe.json"


def _as_stored(recipe: dict) -> dict:
    return json.loads(json.dumps(recipe))  # tuples → lists, as a record stores it


def recipe_hash(exp: "Experiment", scale: str, seed: int) -> str | None:
    """The config hash of the experiment's current recipe at (scale, seed); None if it registers none or cannot
    configure this scale here."""
    if exp.recipe is None:
        return None
    try:
        return R.config_hash(_as_stored(exp.recipe(scale, seed)))
    except Exception:  # e.g. full scale without its environment variables
        return None


def experiment_recipe_hash(experiment_id: str, scale: str, seed: int) -> str | None:
    """recipe_hash of a registered experiment by id (None if it is not registered or registers no recipe): what a
    dependent run (transfer, Table 10) records so that a retrained upstream model makes it stale."""
    exp = discover().get(experiment_id)
    return recipe_hash(exp, scale, seed) if exp is not None else None


def stamped_recipe(wd: Path) -> str | None:
    """The recipe hash a workdir's files were made under (None: no stamp, made before stamps existed)."""
    p = Path(wd) / RECIPE_STAMP
    return json.loads(p.read_text())["hash"] if p.is_file() else None


def _stamp(wd: Path, exp: "Experiment", scale: str, seed: int, want: str) -> None:
    R.write_json_atomic(Path(wd) / RECIPE_STAMP, {"hash": want, "recipe": _as_stored(exp.recipe(scale, seed))})


def set_aside(path: str | os.PathLike, tag: str) -> Path:
    """Moves a file or folder made under another config to `<path>.stale-<tag>` beside it (replacing an older one
    of that tag), so the current config starts afresh without deleting the old work; returns where it went."""
    path = Path(path)
    dest = path.with_name(f"{path.name}.stale-{tag}")
    if dest.is_dir():
        shutil.rmtree(dest)
    elif dest.exists():
        dest.unlink()
    path.rename(dest)
    return dest


def checkpoint_path(experiment_id: str, scale: str, seed: int) -> Path:
    """Where an experiment that trains a model leaves it: <workdir>/model.safetensors (relabel.checkpoint)."""
    return workdir(experiment_id, scale, seed) / "model.safetensors"


def ensure_checkpoint(experiment_id: str, scale: str, seed: int) -> Path:
    """The trained model of another experiment (e.g. a pretrained backbone for transfer), trained if missing."""
    path = checkpoint_path(experiment_id, scale, seed)
    registry = discover()
    exp = registry.get(experiment_id)
    if path.exists() and (exp is None or _checkpoint_current(exp, scale, seed, path)):
        return path
    if exp is None:
        raise KeyError(f"experiment '{experiment_id}' is not registered, so its checkpoint cannot be made")
    run_job(Job(experiment_id, seed, frozenset(), True), scale, R.default_records_path(scale), registry)
    if not path.exists():
        raise RuntimeError(f"experiment '{experiment_id}' ran but left no checkpoint at {path}")
    return path


def _checkpoint_current(exp: Experiment, scale: str, seed: int, path: Path) -> bool:
    """Whether a checkpoint was made under the experiment's current recipe: its workdir's stamp says so, or (made
    before stamps) the trainer's own last checkpoint beside it holds the current recipe; with neither, taken as
    it is. A current unstamped checkpoint gets its stamp."""
    want = recipe_hash(exp, scale, seed)
    if want is None:
        return True
    stamped = stamped_recipe(path.parent)
    if stamped is not None:
        return stamped == want
    last = path.parent / "train" / "last.pt"
    if not last.is_file():
        return True
    import torch
    saved = torch.load(last, map_location="cpu", weights_only=True).get("config")
    if R.config_hash(_as_stored(saved)) != want:
        return False
    _stamp(path.parent, exp, scale, seed, want)
    return True


@contextlib.contextmanager
def artifact_lock(path: str | os.PathLike):
    """Exclusive lock for building a shared artifact (annotator, label store) that several jobs may need."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)

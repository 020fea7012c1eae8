"""The experiment launcher: one registry mapping experiment ids to the code that produces their records.

Section folders (`pretrain/`, `transfer/`, `multilabel_coco/`) register experiments in their `experiments.py` with
`@register(...)`; `results.make` asks the registry to run whatever a table's missing cells need. An experiment is
a config at a scale; its run function receives a `RunContext` (scale, seed, which evaluators' records are missing,
where to write records and files) and appends one record per evaluator with `relabel.records.append`. Runs must be
resumable: a run killed half-way and started again continues from its own checkpoints in `ctx.workdir`.

The job runner builds on relabel.stamped, the artifact primitive every shared file goes through (lock, identity
stamp, the one stale-work policy, atomic write): a job's workdir is its artifact, stamped inside with the
experiment's recipe (`recipe.json`), its files of an earlier recipe set aside before the run.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from relabel import records as R
from relabel import stamped
from relabel.stamped import as_stored as _as_stored

# The modules that register experiments, named exactly: `discover()` imports each, and a missing or misspelt one
# raises. eval_real/ and robustness/ register none: their tables read the evaluator records of pretrain's targets.
SECTION_MODULES = ("pretrain.experiments", "transfer.experiments", "multilabel_coco.experiments")


@dataclass(frozen=True)
class RunContext:
    experiment: str
    scale: str
    seed: int
    evaluators: frozenset  # evaluators whose records are missing; the run may write others too
    records: Path  # the JSONL file to append to
    workdir: Path  # runs/<scale>/<experiment>/seed<seed>: checkpoints, label stores, logs
    recipe: dict | None = None  # the experiment's recipe at (scale, seed): what its records store as config.train

    @property
    def main_rank(self) -> bool:
        """False on the non-zero ranks of a `torchrun` launch: only rank 0 writes records and checkpoints."""
        from relabel.dist import is_main
        return is_main()

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
        """Whether `rec` counts now: written under the current recipe (`recipe_current`) and, if it reads a test
        split, on the current test sets (`on_current_test_sets`)."""
        return self.recipe_current(rec) and on_current_test_sets(rec)

    def recipe_current(self, rec: dict) -> bool:
        """Whether `rec` was written under the current recipe (what trained the model it measures). A recipe that
        cannot be computed here for a reason the user controls (RecipeUnavailable: full scale without its
        environment variables) cannot judge the record, so it is kept; any other exception is a bug in the recipe
        and propagates."""
        if self.recipe is None:
            return True
        try:
            want = self.recipe(rec["scale"], rec["seed"])
        except RecipeUnavailable:
            return True
        return portable(rec.get("config", {}).get("train")) == portable(_as_stored(want))


# A record whose dataset split is one of these measures training (its cost, the label maps of train) and reads no
# test split; every other record is an evaluation on a test split.
TRAINING_SPLITS = ("train", "train+extra")


def expected_test_sets(scale: str) -> str | None:
    """The test sets an evaluation record at `scale` must name in config['test_sets'] to be current: the default
    mini world's as the code writes them (relabel.data.current_test_sets, e.g. 'mini-v1-seed0/test-v2'); None at full
    scale, whose test sets are the real datasets (not versioned here, not checked)."""
    if scale != "mini":
        return None
    from relabel.data.world_config import current_test_sets, make_config  # (not relabel.data.world: it imports this)
    return current_test_sets(0, make_config())


def on_current_test_sets(rec: dict) -> bool:
    """Whether an evaluation record was made on the current test sets: its config['test_sets'] (written from the
    world it read, relabel.data.world_test_sets) is the code's (`expected_test_sets`). A record without it predates
    the field (test sets v1) and is stale. Records of a training split (TRAINING_SPLITS) are never judged here: a
    test set that grows leaves the training it measured as it was."""
    want = expected_test_sets(rec.get("scale"))
    if want is None or rec.get("dataset", {}).get("split") in TRAINING_SPLITS:
        return True
    return rec.get("config", {}).get("test_sets") == want


class RecipeUnavailable(FileNotFoundError):
    """A recipe needs something only the user can provide (e.g. RELABEL_ANNOTATOR_CKPT or RELABEL_OFFICIAL_MAPS
    at full scale, to name the annotator whose maps a row reads). The one exception `is_current` and `recipe_hash`
    tolerate; its message is the sentence a run would end with."""


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
    """(the records written under each experiment's current recipe and, for evaluations, on the current test sets
    (Experiment.is_current), how many stale ones were dropped)."""
    keep = [r for r in records if r["experiment"] not in registry or registry[r["experiment"]].is_current(r)]
    return keep, len(records) - len(keep)


def discover() -> dict[str, Experiment]:
    """Imports every section's experiments module (SECTION_MODULES) once and returns the registry."""
    global _DISCOVERED
    if not _DISCOVERED:
        for name in SECTION_MODULES:
            importlib.import_module(name)
        _DISCOVERED = True
    return dict(_REGISTRY)


runs_root = R.runs_root


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
    """Runs one job in its workdir. Under torchrun every rank calls this; the process group is made first, rank 0
    takes the job lock (a second driver asking for the same run waits, then resumes it), sets aside the files of
    an earlier recipe and stamps the workdir with the current one *before* the run, so a killed run resumes only
    into work of its own recipe. The workdir is the job's artifact, stamped inside (`recipe.json`) because its lock
    lives there too; the stale policy is relabel.stamped.set_aside_stale, as for every artifact."""
    from relabel import dist
    exp = registry[job.experiment]
    unknown = job.evaluators - exp.evaluators
    if unknown:
        raise ValueError(f"experiment '{job.experiment}' cannot produce evaluator(s) {sorted(unknown)}; "
                         f"it produces {sorted(exp.evaluators)}")
    dist.init_distributed()  # before any lock: no rank waits on a lock while another waits for it in the group
    wd = workdir(job.experiment, scale, job.seed)
    wd.mkdir(parents=True, exist_ok=True)
    recipe = _recipe(exp, scale, job.seed)
    with stamped.artifact_lock(wd / "job"):
        # Two drivers on one checkout (two `make`s at once): the second waited here while the first ran this job;
        # the records it wrote are the job's, so the second runs only the evaluators still missing, or nothing.
        todo = stamped.agree(sorted(job.evaluators - recorded_evaluators(exp, scale, job.seed, records_path))
                             if stamped.main_rank() and job.evaluators else sorted(job.evaluators))
        if job.evaluators and not todo:
            if stamped.main_rank():
                print(f"{job.experiment} seed {job.seed}: {records_path} already holds its records at this recipe "
                      "(an earlier run, or one that finished while this waited for its lock); skipping", flush=True)
            return
        job = Job(job.experiment, job.seed, frozenset(todo), job.registered)
        if stamped.main_rank() and recipe is not None:
            want, found = R.config_hash(portable(recipe)), stamped_recipe(wd)
            what = f"an earlier recipe ({found})" if found else "no recipe stamp"
            stamped.set_aside_stale(wd, found, found == want, f"held files of {what}", contents=True)
            if found != want:
                stamped.write_stamp(wd / RECIPE_STAMP, portable(recipe))
        stamped.barrier()
        exp.run(RunContext(job.experiment, scale, job.seed, job.evaluators, records_path, wd, recipe))
        stamped.barrier()


def recorded_evaluators(exp: "Experiment", scale: str, seed: int, records_path: Path) -> set:
    """The evaluators of `exp` at (scale, seed) that `records_path` holds a final record of, at its current recipe
    and under this process's `--set` overrides (the records a job would write)."""
    over = R.active_overrides()
    return {r["evaluator"] for r in R.read(records_path)
            if (r["experiment"], r["scale"], r["seed"]) == (exp.id, scale, seed) and r["final"]
            and R.overrides_of(r) == over and exp.is_current(r)}


# A run's workdir says which recipe its files (checkpoints, model.safetensors) were made under, so a later recipe
# never silently reuses them: run_job sets a stale workdir's files aside (relabel.stamped.set_aside_stale; an
# unstamped workdir's too), ensure_checkpoint retrains.
RECIPE_STAMP = "recipe.json"

# Where this machine keeps the data is not part of a recipe (the recipe names its dataset, e.g. 'mini-v1-seed0/coco'):
# records keep these paths as provenance, but a record is judged, and a workdir stamped, without them, so committed
# records stay current on a clone at another path or with another RELABEL_DATA.
MACHINE_LOCAL_KEYS = ("world", "data_root", "root")


def portable(recipe):
    """A recipe without its machine-local paths (MACHINE_LOCAL_KEYS): what staleness and stamps compare."""
    if not isinstance(recipe, dict):
        return recipe
    return {k: v for k, v in recipe.items() if k not in MACHINE_LOCAL_KEYS}


def _recipe(exp: "Experiment", scale: str, seed: int) -> dict | None:
    """The experiment's recipe as a record stores it; None if it registers none or the user has not provided
    what it needs here (RecipeUnavailable: the run itself then ends with that sentence). Anything else raises."""
    if exp.recipe is None:
        return None
    try:
        return _as_stored(exp.recipe(scale, seed))
    except RecipeUnavailable:
        return None


def recipe_hash(exp: "Experiment", scale: str, seed: int) -> str | None:
    """The config hash of the experiment's current recipe at (scale, seed); None if it registers none or cannot
    be computed here (RecipeUnavailable). A recipe that fails for any other reason raises."""
    recipe = _recipe(exp, scale, seed)
    return None if recipe is None else R.config_hash(portable(recipe))


def experiment_recipe_hash(experiment_id: str, scale: str, seed: int) -> str | None:
    """recipe_hash of a registered experiment by id (None if it is not registered or registers no recipe): what a
    dependent run (transfer, Table 10) records so that a retrained upstream model makes it stale."""
    exp = discover().get(experiment_id)
    return recipe_hash(exp, scale, seed) if exp is not None else None


def stamped_recipe(wd: Path) -> str | None:
    """The recipe hash a workdir's files were made under (None: no stamp, made before stamps existed)."""
    return stamped.read_stamp(Path(wd) / RECIPE_STAMP)


def checkpoint_path(experiment_id: str, scale: str, seed: int) -> Path:
    """Where an experiment that trains a model leaves it: <workdir>/model.safetensors (relabel.checkpoint)."""
    return workdir(experiment_id, scale, seed) / "model.safetensors"


def ensure_checkpoint(experiment_id: str, scale: str, seed: int) -> Path:
    """The trained model of another experiment (e.g. a pretrained backbone for transfer), trained if missing or
    made under another recipe (its workdir's stamp says which; an unstamped one is made again). Every rank calls
    it under torchrun: rank 0 decides, all ranks train."""
    path = checkpoint_path(experiment_id, scale, seed)
    registry = discover()
    exp = registry.get(experiment_id)
    if exp is None:
        if path.exists():
            return path
        raise KeyError(f"experiment '{experiment_id}' is not registered, so its checkpoint cannot be made")
    want = recipe_hash(exp, scale, seed)
    # (a recipe that cannot be computed here cannot judge the file: an existing one is taken)
    current = stamped.agree(path.exists() and (want is None or stamped_recipe(path.parent) == want))
    if not current:
        run_job(Job(experiment_id, seed, frozenset(), True), scale, R.default_records_path(scale), registry)
    if not path.exists():
        raise RuntimeError(f"experiment '{experiment_id}' ran but left no checkpoint at {path}")
    return path


def user_errors() -> tuple:
    """Errors a run raises for a cause the user can fix (missing data, a wrong checkpoint, a recipe that cannot run
    as asked, a stray class folder, a diverged loss): the drivers print them as one sentence, not a traceback."""
    from relabel.checkpoint import CheckpointError
    from relabel.configs import ConfigError
    from relabel.data.readers import UnknownClassFolder
    from relabel.loader import BadImageError
    from relabel.store import LabelStoreError
    return (FileNotFoundError, BadImageError, CheckpointError, ConfigError, LabelStoreError, UnknownClassFolder,
            FloatingPointError)

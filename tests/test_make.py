"""The make targets' driver: dry runs, running only missing cells, unregistered experiments, clear errors."""
import subprocess
import sys
from pathlib import Path

import pytest

from relabel import launch, records as R
from results import make, tables as T

FIX = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "results.make", *args], cwd=ROOT, capture_output=True, text=True)


def test_unknown_table_exits_with_one_clear_sentence():
    p = _cli("table42")
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: unknown table or figure 'table42'")
    assert "Traceback" not in p.stderr


def test_dry_run_lists_experiments_and_runs_nothing(isolated_runs):
    p = _cli("table3", "--dry-run")
    assert p.returncode == 0
    assert "pretrain/resnet50/relabel" in p.stdout and "seed=0" in p.stdout
    assert not (isolated_runs / "records").exists()


def test_fixture_records_render_table3_completely(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "discover", lambda: {})  # nothing registered: the driver must not train here
    out = tmp_path / "rendered"
    lines = []
    status = make.make(["table3"], "mini", (0, 1, 2), record_paths=[FIX / "table3_records.jsonl"], out_root=out,
                       log=lines.append)
    md = (out / "mini" / "table3.md").read_text()
    assert "| ReLabel | 78.9 |" in md and (out / "mini" / "table3.tex").exists()
    assert (out / "mini" / "table3.csv").read_text().startswith("table,scale,row")
    assert status == 3  # the one cell the fixture lacks (label cleaning / Shankar) is not registered yet
    assert any("pretrain/resnet50/label_cleaning" in l for l in lines)


def test_registered_experiment_runs_only_missing_cells_once(monkeypatch, tmp_path):
    calls = []

    def fake_run(ctx):
        calls.append((ctx.experiment, ctx.seed, ctx.evaluators))
        for ev in ctx.evaluators:
            ctx.append(R.make_record(experiment=ctx.experiment, evaluator=ev, metrics={"top1": 50.0 + ctx.seed},
                                     config={"fake": True, "test_sets": launch.expected_test_sets(ctx.scale)},
                                     scale=ctx.scale, seed=ctx.seed,
                                     dataset={"name": "fake", "split": "val", "size": 1}, wall_time_s=0))

    registry = {e: launch.Experiment(e, frozenset({"val", "real"}), fake_run)
                for e in ("pretrain/resnet50/relabel", "pretrain/resnet50/localized_single",
                          "pretrain/resnet50/global_multi", "pretrain/resnet50/global_single",
                          "pretrain/resnet50/original", "pretrain/resnet50/relabel_oracle")}
    monkeypatch.setattr(launch, "discover", lambda: registry)
    out = tmp_path / "rendered"
    assert make.make(["table2"], "mini", (0, 1), out_root=out, log=lambda *_: None) == 0
    assert len(calls) == 10 and all(ev == {"val", "real"} for *_, ev in calls)  # the paper's 5 rows × 2 seeds
    assert "pretrain/resnet50/relabel_oracle" not in {e for e, *_ in calls}  # an extra row: only when asked
    md = (out / "mini" / "table2.md").read_text()
    assert "50.5 ± 0.7 (n=2)" in md and "`make table2 EXTRA=1` runs it" in md
    assert make.make(["table2"], "mini", (0, 1), out_root=out, log=lambda *_: None, extra_rows=True) == 0
    assert len(calls) == 12 and {e for e, *_ in calls[10:]} == {"pretrain/resnet50/relabel_oracle"}
    assert make.make(["table2"], "mini", (0, 1), out_root=out, log=lambda *_: None, extra_rows=True) == 0
    assert len(calls) == 12  # every cell has its records, nothing re-runs
    assert "EXTRA=1" not in (out / "mini" / "table2.md").read_text().split("Notes:")[0]  # extra row rendered


def test_records_of_an_earlier_recipe_are_stale_and_their_cells_run_again(monkeypatch, tmp_path):
    recipe = {"lr": 0.1, "crop_scale": (0.08, 1.0)}  # a tuple comes back from JSON as a list: still current
    calls = []

    def fake_run(ctx):
        calls.append(ctx.seed)
        for ev in ctx.evaluators:
            ctx.append(R.make_record(experiment=ctx.experiment, evaluator=ev, metrics={"top1": 100 * recipe["lr"]},
                                     config={"train": dict(recipe), "test_sets": launch.expected_test_sets(ctx.scale)},
                                     scale=ctx.scale, seed=ctx.seed,
                                     dataset={"name": "fake", "split": "val", "size": 1}, wall_time_s=0))

    exps = ("pretrain/resnet50/relabel", "pretrain/resnet50/localized_single", "pretrain/resnet50/global_multi",
            "pretrain/resnet50/global_single", "pretrain/resnet50/original", "pretrain/resnet50/relabel_oracle")
    registry = {e: launch.Experiment(e, frozenset({"val", "real"}), fake_run, recipe=lambda scale, seed: recipe)
                for e in exps}
    monkeypatch.setattr(launch, "discover", lambda: registry)
    out, lines = tmp_path / "rendered", []
    assert make.make(["table2"], "mini", (0,), out_root=out, log=lines.append, extra_rows=True) == 0
    assert len(calls) == 6 and "10.0" in (out / "mini" / "table2.md").read_text()
    recipe["lr"] = 0.2  # the config changed: every cell is stale, runs again, and only the new records count
    assert make.make(["table2"], "mini", (0,), out_root=out, log=lines.append, extra_rows=True) == 0
    assert len(calls) == 12 and any("earlier recipe" in l for l in lines)
    md = (out / "mini" / "table2.md").read_text()
    assert "20.0" in md and "10.0" not in md


def test_records_stay_current_on_a_clone_with_its_data_elsewhere():
    """Committed records name where their machine kept the data (world, data_root, root): a clone at another path
    or RELABEL_DATA must still count them (issue 15: `make tables` on a clone runs nothing), the recipe must not."""
    here = {"lr": 0.1, "dataset": "mini-v1-seed0/coco", "world": "/home/a/data/mini-v1-seed0",
            "data_root": "/home/a/data/mini-v1-seed0/coco", "root": "/home/a/data/mini-v1-seed0/finegrained/dtd"}
    exp = launch.Experiment("x", frozenset({"val"}), lambda ctx: None, recipe=lambda scale, seed: here)
    rec = {"scale": "mini", "seed": 0, "dataset": {"name": "mini-v1-seed0/coco", "split": "val", "size": 2000},
           "config": {"train": {**here, "world": "/work/main/data/mini-v1-seed0",
                                "data_root": "/work/main/data/mini-v1-seed0/coco",
                                "root": "/work/main/data/mini-v1-seed0/finegrained/dtd"},
                      "test_sets": launch.expected_test_sets("mini")}}
    assert exp.is_current(rec)
    for changed in ({"dataset": "mini-v2-seed0/coco"}, {"lr": 0.2}):
        assert not exp.is_current({**rec, "config": {**rec["config"], "train": {**rec["config"]["train"], **changed}}})
    assert launch.recipe_hash(exp, "mini", 0) == R.config_hash(launch.portable(rec["config"]["train"]))


def test_an_evaluation_record_is_current_only_on_the_current_test_sets():
    """Issue 25: the mini test sets grew (relabel.data.world_config.TEST_SETS_VERSION 2) and the training splits did
    not, so no recipe changed; every evaluation record of the earlier test sets is stale all the same (a top-1 on
    1,500 val images is not a cell of the 20,000-image val), while a record of training (its cost) stays current."""
    here = {"lr": 0.1}
    exp = launch.Experiment("x", frozenset({"val", "cost"}), lambda ctx: None, recipe=lambda scale, seed: here)
    crops = launch.Experiment("y", frozenset({"crop_iou"}), lambda ctx: None)  # no recipe: Fig. 2 reads val boxes
    now = launch.expected_test_sets("mini")
    assert now == "mini-v1-seed0/test-v2"
    ev = {"experiment": "x", "scale": "mini", "seed": 0,
          "dataset": {"name": "imagenet-val", "split": "val", "size": 20000},
          "config": {"train": here, "test_sets": now}}
    before = {**ev, "dataset": {**ev["dataset"], "size": 1500}, "config": {"train": here}}  # no field: v1
    assert exp.is_current(ev) and crops.is_current(ev)
    assert not exp.is_current(before) and exp.recipe_current(before) and not crops.is_current(before)
    assert not exp.is_current({**ev, "config": {"train": here, "test_sets": "mini-v1-seed0/test-v1"}})
    for split in launch.TRAINING_SPLITS:  # the cost of a training run: no test split read
        assert exp.is_current({**before, "dataset": {"name": "mini-v1-seed0", "split": split, "size": 5000}})
    assert exp.is_current({**before, "scale": "full"})  # the real datasets: not versioned, not judged
    kept, stale = launch.current_records([ev, before], {"x": exp})
    assert kept == [ev] and stale == 1


def test_bad_seeds_and_missing_records_file_are_clear_errors():
    p = _cli("table3", "--seeds", "a,b")
    assert p.returncode == 2 and "--seeds must be comma-separated integers" in p.stderr
    p = _cli("table3", "--records", "nope.jsonl")
    assert p.returncode == 2 and p.stderr == "error: records file 'nope.jsonl' does not exist\n"
    p = _cli("table3", "--jobs", "0", "--dry-run")
    assert p.returncode == 2 and p.stderr == "error: --jobs must be at least 1 (runs to execute at once), got 0\n"


def test_every_target_renders_without_records(tmp_path):
    summary = []
    make.make(list(T.TARGETS), "mini", None, out_root=tmp_path, log=lambda *_: None, run=False, summary=summary)
    assert [s[0] for s in summary] == list(T.TARGETS)
    assert all(filled == 0 for _, filled, _, _ in summary)


def test_parallel_order_starts_one_artifact_builder_then_free_jobs():
    reg = {"a": launch.Experiment("a", frozenset(), None, needs=("annotator",)),
           "b": launch.Experiment("b", frozenset(), None, needs=("annotator",)),
           "c": launch.Experiment("c", frozenset(), None)}
    jobs = [launch.Job(e, 0, frozenset(), True) for e in ("a", "b", "c")]
    assert [j.experiment for j in launch.order_for_parallel(jobs, reg)] == ["a", "c", "b"]


def test_a_run_failing_on_missing_data_ends_in_one_sentence(monkeypatch, capsys):
    def run(ctx):
        raise FileNotFoundError("ImageNet root /nowhere has no train/ folder; set IMAGENET_ROOT")

    registry = {"pretrain/resnet50/relabel": launch.Experiment("pretrain/resnet50/relabel",
                                                                frozenset({"val", "real"}), run)}
    monkeypatch.setattr(launch, "discover", lambda: registry)
    assert make.main(["table2"]) == 1
    assert capsys.readouterr().err == "error: ImageNet root /nowhere has no train/ folder; set IMAGENET_ROOT\n"


def test_a_checkpoint_of_an_earlier_recipe_is_set_aside_and_made_again(isolated_runs, monkeypatch):
    """ensure_checkpoint (how transfer and Table 10 get their backbones) never reuses a model made under another
    recipe: the workdir's stamp says which recipe made it; one without a stamp is never trusted (made again)."""
    recipe, calls = {"lr": 0.1}, []

    def fake_run(ctx):
        calls.append(ctx.seed)
        ctx.workdir.joinpath("model.safetensors").write_text(f"lr={recipe['lr']}")

    exp = "pretrain/resnet50/original"
    registry = {exp: launch.Experiment(exp, frozenset({"val"}), fake_run, recipe=lambda scale, seed: dict(recipe))}
    monkeypatch.setattr(launch, "discover", lambda: registry)
    path = launch.ensure_checkpoint(exp, "mini", 0)
    assert calls == [0] and path.read_text() == "lr=0.1"
    assert launch.ensure_checkpoint(exp, "mini", 0) == path and calls == [0]  # current: reused
    recipe["lr"] = 0.2
    launch.ensure_checkpoint(exp, "mini", 0)
    assert calls == [0, 0] and path.read_text() == "lr=0.2"
    old = R.config_hash({"lr": 0.1})
    assert (path.parent / f"model.safetensors.stale-{old}").read_text() == "lr=0.1"  # kept, not deleted

    # made before stamps existed (or by hand): set aside as .stale-unstamped and made again (relabel.stamped's one
    # stale policy for every artifact)
    (path.parent / launch.RECIPE_STAMP).unlink()
    launch.ensure_checkpoint(exp, "mini", 0)
    assert calls == [0, 0, 0] and launch.stamped_recipe(path.parent) == R.config_hash({"lr": 0.2})
    assert (path.parent / "model.safetensors.stale-unstamped").read_text() == "lr=0.2"


def test_targets_share_one_pool_and_a_run_two_tables_need_runs_once(monkeypatch, tmp_path):
    calls = []

    def fake_run(ctx):
        calls.append((ctx.experiment, ctx.seed, ctx.evaluators))
        for ev in ctx.evaluators:
            ctx.append(R.make_record(experiment=ctx.experiment, evaluator=ev, metrics={"top1": 50.0},
                                     config={"fake": True, "test_sets": launch.expected_test_sets(ctx.scale)},
                                     scale=ctx.scale, seed=ctx.seed,
                                     dataset={"name": "fake", "split": "val", "size": 1}, wall_time_s=0))

    evaluators = frozenset({"val", "real", "v2-top-images", "shankar"})
    exps = {s.experiment for t in ("table2", "table3") for r in T.get(t).rows if not r.extra for s in r.sources if s}
    registry = {e: launch.Experiment(e, evaluators, fake_run) for e in exps}
    monkeypatch.setattr(launch, "discover", lambda: registry)
    lines = []
    assert make.make(["table2", "table3"], "mini", (0,), out_root=tmp_path / "r", log=lines.append) == 0
    runs = [(e, s) for e, s, _ in calls]
    assert len(runs) == len(set(runs)) == len(exps)  # ReLabel and Original are in both tables: each ran once
    relabel = next(ev for e, _, ev in calls if e == "pretrain/resnet50/relabel")
    assert {"val", "real", "v2-top-images", "shankar"} <= relabel  # with both tables' evaluators


def test_seeds_plan_runs_each_table_at_its_planned_seeds(isolated_runs):
    """`--seeds plan` (docs/statistics-plan.md): Table 3 at 10 seeds, Table 7 at 4; a run both read is one job."""
    from results import claims as C
    assert C.planned_seeds("table3") == C.PLAN["Table 3"][0] == 10
    assert C.planned_seeds("table7") == C.PLAN["Table 7"][0] == 4 and C.planned_seeds("fig2") is None
    assert make.table_seeds("table3", "plan") == tuple(range(10)) and make.table_seeds("table3", (0, 1)) == (0, 1)
    p = _cli("table3", "table7", "--seeds", "plan", "--dry-run")
    assert p.returncode == 0, p.stderr
    t3, t7 = p.stdout.split("table7 [mini]")
    assert "pretrain/resnet50/original  seed=9  " in t3 and "seed=10" not in t3
    assert "pretrain/resnet50/relabel_cutmix_extra  seed=3  " in t7 and "seed=4" not in t7
    p = _cli("table3", "--seeds", "plan", "--list")
    assert p.returncode == 0 and "current (planned seeds)" in p.stdout and "no: seed 0,1,2,3,4,5,6,7,8,9" in p.stdout

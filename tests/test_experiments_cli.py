"""Experiments you can grep (issue 16): the registry holds exactly the tables' cells, each id is a literal string
where it is registered and where its table reads it; `results.make --list`; `python -m pretrain ARCH ROW`."""
import json
import os
import re
from pathlib import Path

import pytest

from relabel import launch, stamped
from relabel import records as R
from relabel import configs
from results import make, tables as T

ROOT = Path(__file__).resolve().parents[1]
# Named by a table but made outside the launcher: the Costs table's bench record (`make bench`).
NOT_LAUNCHED = {"bench/relabel"}
# Registered but read by no table cell, each for a documented reason.
EXTRAS = {"multilabel_coco/annotator": "Table 10's machine annotator's own mAP (docs/coco.md)"}
# Where each section registers its ids, as literal strings.
REGISTERED_IN = {"pretrain": "pretrain/experiments.py", "annotator": "pretrain/experiments.py",
                 "analysis": "pretrain/experiments.py", "transfer": "transfer/experiments.py",
                 "multilabel_coco": "multilabel_coco/experiments.py"}


def _table_sources():
    return [(t, r, c, s) for t in T.ALL.values() for r in t.rows for c, s in zip(t.cols, r.sources) if s]


def test_the_registry_is_exactly_the_tables_cells():
    """Every id a table or figure reads is registered with that evaluator, and every registered id is read by one
    (or is a documented extra): no unused registrations, as the 192 (arch, row) pairs once were."""
    registry = launch.discover()
    named = {s.experiment for *_, s in _table_sources()}
    assert named - NOT_LAUNCHED <= set(registry), sorted(named - NOT_LAUNCHED - set(registry))
    assert set(registry) - named == set(EXTRAS), sorted(set(registry) - named)
    for t, r, c, s in _table_sources():
        if s.experiment not in NOT_LAUNCHED:
            assert s.evaluator in registry[s.experiment].evaluators, (t.name, r.key, c.key, s)
    for path, curve in ((t.name, t.plot) for t in T.ALL.values() if isinstance(t.plot, T.Curve)):
        assert curve.evaluator in registry[curve.experiment].evaluators, path


def test_the_backbones_other_sections_fetch_are_registered_cells():
    """transfer/ and multilabel_coco/ take their backbones through launch.ensure_checkpoint: each must be one of
    the registered cells (ensure_checkpoint refuses an unregistered id)."""
    from multilabel_coco.config import ARCHS, get_config
    from multilabel_coco.pipeline import ANNOTATOR_EXPERIMENT
    from transfer.experiments import BACKBONES
    registry = launch.discover()
    fetched = set(BACKBONES.values()) | {get_config("mini", arch, "baseline", 0).init.partition(":")[2]
                                         for arch in ARCHS}
    fetched |= {get_config("mini", "resnet50", "machine", 0).annotator.init}
    assert fetched == {"pretrain/resnet50/original", "pretrain/resnet50/relabel", "pretrain/resnet101/original",
                       "annotator/default"}
    assert fetched <= set(registry) and ANNOTATOR_EXPERIMENT in registry


def test_every_id_is_a_literal_string_where_it_is_registered_and_where_a_table_reads_it():
    """grep an id of a rendered table: it is found in results/tables.py (its row) and in its section's
    experiments module (its registration), never assembled from f-string parts."""
    tables_py = (ROOT / "results" / "tables.py").read_text()
    sources = {}
    for exp_id in launch.discover():
        sources.setdefault(REGISTERED_IN[exp_id.split("/")[0]], []).append(exp_id)
    for path, ids in sources.items():
        text = (ROOT / path).read_text()
        missing = [i for i in ids if f'"{i}"' not in text]
        assert not missing, f"{path} does not spell out {missing}"
    for *_, s in _table_sources():
        assert f'"{s.experiment}"' in tables_py, s.experiment
    assert not re.search(r'f"(pretrain|annotator|transfer|multilabel_coco)/', tables_py)


def test_an_annotator_experiment_per_annotator():
    from pretrain.config import ANNOTATORS
    from pretrain.experiments import ANNOTATOR_EXPERIMENTS
    assert sorted(ANNOTATOR_EXPERIMENTS.values()) == sorted(ANNOTATORS)
    assert all(k == f"annotator/{v}" for k, v in ANNOTATOR_EXPERIMENTS.items())


# --- results.make --list -----------------------------------------------------------------------------------------

def _record(exp_id, evaluator, seed, train):
    return R.make_record(experiment=exp_id, evaluator=evaluator, metrics={"top1": 50.0 + seed},
                         config={"train": train, "test_sets": launch.expected_test_sets("mini")}, scale="mini",
                         seed=seed,
                         dataset={"name": "fake", "split": "val", "size": 1}, wall_time_s=0.0)


@pytest.fixture
def nothing_runs(monkeypatch, tmp_path):
    """--list must read records and recipes only: no run, no artifact (world, annotator, store) is made."""
    def refuse(*a, **k):
        raise AssertionError("--list ran or built something")
    monkeypatch.setattr(launch, "run_job", refuse)
    monkeypatch.setattr(stamped, "artifact", refuse)
    monkeypatch.setenv("RELABEL_DATA", str(tmp_path / "data"))  # a world would be generated here
    yield
    assert not (tmp_path / "data").exists()


def test_list_shows_cells_recorded_seeds_and_staleness(nothing_runs, tmp_path, capsys):
    registry = launch.discover()

    def recipe(exp_id, seed):  # the current recipe (a target's includes its seed)
        return launch._recipe(registry[exp_id], "mini", seed)
    recs = tmp_path / "recs.jsonl"
    for seed in (0, 1):  # original: both of Table 2's cells at seeds 0 and 1, under the current recipe
        for ev in ("val", "real"):
            R.append(recs, _record("pretrain/resnet50/original", ev, seed, recipe("pretrain/resnet50/original", seed)))
    R.append(recs, _record("pretrain/resnet50/localized_single", "val", 0,  # one of its two cells
                           recipe("pretrain/resnet50/localized_single", 0)))
    R.append(recs, _record("pretrain/resnet50/relabel", "val", 0, {"an": "earlier recipe"}))  # stale
    lines = []
    assert make.list_experiments(["table2"], "mini", (0, 1), [recs], log=lines.append) == 0
    rows = {l.split()[0]: l for l in lines[2:]}
    assert set(rows) == {"pretrain/resnet50/" + r for r in ("relabel", "localized_single", "global_multi",
                                                             "global_single", "original", "relabel_oracle")}
    assert re.search(r"pretrain/resnet50/original\s+0,1\s+yes\s+table2/original/\{top1,real\}$",
                     rows["pretrain/resnet50/original"])
    assert re.search(r"\s+— \(0 partly\)\s+no: seed 0,1\s+table2/localized_single/",
                     rows["pretrain/resnet50/localized_single"])
    assert "no: seed 0,1 (1 stale)" in rows["pretrain/resnet50/relabel"]
    assert "(extra row)" in rows["pretrain/resnet50/relabel_oracle"]
    # at seed 0 alone, original is current; Fig. 4 reads the annotators at seed 0 whatever --seeds says
    lines.clear()
    make.list_experiments(["table2", "fig4"], "mini", (0,), [recs], log=lines.append)
    rows = {l.split()[0]: l for l in lines[2:]}
    assert " yes " in rows["pretrain/resnet50/original"]
    assert "fig4/original" not in rows["pretrain/resnet50/original"]
    assert "fig4/baseline/{target,target_real}" in rows["pretrain/resnet50/original"]
    assert "no: seed 0 " in rows["annotator/w025"] + " "


def test_list_of_everything_names_every_registered_and_table_id(nothing_runs, capsys):
    assert make.main(["--list"]) == 0
    out = capsys.readouterr().out
    listed = {l.split()[0] for l in out.splitlines()[2:]}
    assert listed == set(launch.discover()) | NOT_LAUNCHED
    assert re.search(r"multilabel_coco/annotator .*— \(no table reads it\)", out)
    assert re.search(r"bench/relabel .*not registered", out)


def test_list_and_make_refuse_bad_input_in_one_sentence(nothing_runs, capsys):
    assert make.main(["--list", "table42"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown table or figure 'table42'")
    assert make.main([]) == 2
    assert "name at least one TARGET" in capsys.readouterr().err


# --- python -m pretrain ------------------------------------------------------------------------------------------

@pytest.fixture
def spy_run_job(monkeypatch):
    """The CLI's call into the launcher, recorded instead of run (the launcher itself is tested elsewhere)."""
    monkeypatch.setattr(configs, "_ACTIVE", {})  # restored after the test: the CLI sets its --set overrides here
    calls = []
    monkeypatch.setattr(launch, "run_job", lambda job, scale, records, registry: calls.append(
        (job, scale, records, registry)))
    return calls


def test_pretrain_cli_runs_a_table_cell_through_the_launcher(spy_run_job, capsys):
    from pretrain.__main__ import main
    assert main(["resnet50", "relabel", "--seed", "2", "--eval", "real,cost"]) == 0
    (job, scale, records, registry), = spy_run_job
    assert (job.experiment, job.seed, job.evaluators, scale) == ("pretrain/resnet50/relabel", 2,
                                                                 {"val", "real", "cost"}, "mini")
    assert records == R.default_records_path("mini")  # the records make reads
    assert registry["pretrain/resnet50/relabel"] is launch.discover()["pretrain/resnet50/relabel"]
    assert "not a cell" not in capsys.readouterr().out


def test_pretrain_cli_runs_any_other_pair_and_hands_set_to_the_run(spy_run_job, capsys):
    from pretrain.__main__ import main
    assert main(["resnet18", "label_smoothing", "--set", "epochs=1", "--set", "batch_size=16"]) == 0
    (job, scale, _, registry), = spy_run_job
    assert job.experiment == "pretrain/resnet18/label_smoothing" and job.evaluators == {"val"}
    assert job.experiment not in launch.discover()
    assert "not a cell of any table" in capsys.readouterr().out
    assert configs.active_overrides() == {"epochs": 1, "batch_size": 16}  # as results.make --set does
    assert "RELABEL_SET" not in os.environ  # process-local: no environment variable carries them
    recipe = registry[job.experiment].recipe("mini", 0)  # what the run's records will store
    assert (recipe["model"], recipe["label_smoothing"], recipe["epochs"], recipe["batch_size"]) == \
        ("resnet18", 0.1, 1, 16)


@pytest.mark.parametrize("argv, message", [
    (["resnet50", "relabel", "--set", "epochz=1"], "error: unknown --set key(s) ['epochz']"),
    (["resnet50", "relabel", "--eval", "val,rael"], "error: unknown evaluator(s) ['rael']"),
])
def test_pretrain_cli_refuses_bad_input_before_running(spy_run_job, capsys, argv, message):
    from pretrain.__main__ import main
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(message) and not spy_run_job


def test_pretrain_cli_help_lists_archs_and_rows(capsys):
    from pretrain.__main__ import main
    from pretrain.config import ARCHS, ROWS
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(a in out for a in ARCHS) and all(f"\n  {r} " in out for r in ROWS)
    with pytest.raises(SystemExit) as e:
        main(["resnet5", "relabel"])
    assert e.value.code == 2 and "invalid choice: 'resnet5'" in capsys.readouterr().err


def test_every_cli_has_the_same_set_option_and_refuses_unknown_keys():
    """issue 26: one --set (relabel.configs.add_set_argument) with one meaning: a field of that CLI's config."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    core = ("KEY=VALUE, repeatable, VALUE read as a Python literal ('train.KEY' reaches a nested training recipe "
            "where there is one); unknown keys are refused with the valid ones listed")
    refusals = {"results.make": (["table3", "--set", "epochz=1", "--dry-run"], "unknown --set key(s) ['epochz']"),
                "pretrain": (["resnet50", "original", "--set", "epochz=1"], "unknown --set key(s) ['epochz']"),
                "transfer": (["finegrained", "--backbone", "x.safetensors", "--set", "epochz=1"],
                             "unknown FineGrainedConfig option(s) ['epochz']"),
                "multilabel_coco": (["--set", "train.epochz=1"], "unknown TrainConfig option(s) ['epochz']")}
    for module, (argv, message) in refusals.items():
        p = subprocess.run([sys.executable, "-m", module, "--help"], cwd=root, capture_output=True, text=True)
        assert " ".join(p.stdout.split()).count(core) == 1, module
        p = subprocess.run([sys.executable, "-m", module, *argv], cwd=root, capture_output=True, text=True)
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, (module, p.stderr)

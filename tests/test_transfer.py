"""Table 8 machinery (grid search, both protocols, fine-tuning on a tiny folder) and the Table 8/9 registrations."""
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from relabel import outcomes
import torch
from PIL import Image

from relabel.checkpoint import CheckpointError
from tests.test_detection import tiny_backbone
from transfer import finegrained as FG
from relabel.records import file_sha256
from transfer.backbone import open_backbone
from transfer.grid import grid, grid_search, protocols, select


def test_grid_search_picks_the_optimum_of_a_toy_objective():
    points = grid(lr=[1e-3, 1e-2, 1e-1], weight_decay=[0.0, 1e-4, 1e-3])
    assert len(points) == 9 and points[0] == {"lr": 1e-3, "weight_decay": 0.0}
    assert points[1] == {"lr": 1e-3, "weight_decay": 1e-4}  # the first axis varies slowest

    def toy(p):  # a single peak at lr 1e-2, wd 1e-4
        score = -(math.log10(p["lr"]) + 2) ** 2 - (p["weight_decay"] * 1e4 - 1) ** 2
        return {"holdout_top1": score, "test_top1": score}

    res = grid_search(points, toy)
    best = select(res, "holdout_top1")
    assert (best["lr"], best["weight_decay"]) == (1e-2, 1e-4)
    assert len(res) == 9 and all({"lr", "weight_decay", "holdout_top1", "test_top1"} <= set(r) for r in res)


def test_protocols_differ_when_holdout_and_test_disagree():
    res = [{"lr": 0.1, "holdout_top1": 80.0, "test_top1": 70.0},
           {"lr": 0.01, "holdout_top1": 60.0, "test_top1": 75.0},
           {"lr": 0.001, "holdout_top1": 80.0, "test_top1": 72.0}]  # ties go to the earliest point
    out = protocols(res)
    assert out["top1_best_on_test"] == 75.0 and out["paper_point"]["lr"] == 0.01  # the paper's: max on test
    assert out["top1_selected_on_holdout"] == 70.0 and out["selected_point"]["lr"] == 0.1  # honest
    with pytest.raises(ValueError, match="grid is empty"):
        select([], "test_top1")


def test_holdout_slice_is_stratified_disjoint_and_fixed():
    samples = [(f"c{y}/{i}.png", y) for y in range(3) for i in range(10)]
    fit, hold = FG._holdout_slice(samples, 0.2)
    assert len(hold) == 6 and sorted(fit + hold) == sorted(samples)
    assert [sum(1 for _, y in hold if y == c) for c in range(3)] == [2, 2, 2]
    assert FG._holdout_slice(samples, 0.2) == (fit, hold)


def _task_folder(root: Path, classes=3, per_split=(8, 4, 4), size=20):
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "val", "test"), per_split):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
                img[..., c] += 180  # a learnable colour cue
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def test_finegrained_grid_trains_scores_and_resumes(tmp_path, monkeypatch):
    root = _task_folder(tmp_path / "dtd")
    cfg = FG.get_config("mini", "dtd", root=str(root), input_size=16, max_steps=2, batch_size=8,
                        lrs=(0.01, 0.1), weight_decays=(0.0,), cache_images=False)
    bb = open_backbone(tiny_backbone(tmp_path / "bb.safetensors"), "resnet50")
    res = FG.run_grid(cfg, bb, tmp_path / "wd", seed=0, log=lambda *_: None)
    assert res["splits"] == {"fit": {"name": "train", "size": 24}, "holdout": {"name": "val", "size": 12},
                             "test": {"name": "test", "size": 12}}
    assert len(res["points"]) == 2 and all(p["steps"] == 2 for p in res["points"])
    assert 0 <= res["top1_selected_on_holdout"] <= res["top1_best_on_test"] <= 100
    assert res["num_classes"] == 3
    # per-image outcomes of the two protocols' grid points (issue 25), kept out of the grid listing
    for metric in ("top1_best_on_test", "top1_selected_on_holdout"):
        assert 100 * outcomes.decode(res["outcomes"][metric]).mean() == pytest.approx(res[metric])
    assert all("test_outcome" not in p for p in res["points"])
    saved = sorted(p.name for p in (tmp_path / "wd" / "grid").glob("*.json"))
    assert saved == ["lr0.01_wd0.json", "lr0.1_wd0.json"]
    assert not list((tmp_path / "wd" / "grid").glob("*/last.pt"))  # weights are not kept per grid point

    def no_training(*a, **k):
        raise AssertionError("a finished grid point was trained again")
    monkeypatch.setattr(FG, "train", no_training)
    again = FG.run_grid(cfg, bb, tmp_path / "wd", seed=0, log=lambda *_: None)
    assert again["points"] == res["points"] and again["outcomes"] == res["outcomes"]


def test_finegrained_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown FineGrainedConfig option"):
        FG.get_config("mini", "dtd", max_step=3)
    with pytest.raises(ValueError, match="task must be one of"):
        FG.get_config("mini", "birds")
    full = FG.get_config("full", "aircraft", root=str(tmp_path / "nowhere"))
    assert full.max_steps == 5000 and full.reader == "torchvision" and len(full.lrs) * len(full.weight_decays) == 56
    with pytest.raises(FileNotFoundError, match="FGVCAircraft root .* does not exist"):
        FG.load_splits(full)
    with pytest.raises(CheckpointError, match="fine-tunes a 'resnet50'"):
        open_backbone(tiny_backbone(tmp_path / "r18.safetensors", arch="resnet18"), full.backbone_arch)


def test_cli_errors_end_in_one_sentence(tmp_path, capsys):
    """`python -m transfer` on a missing or wrong-architecture checkpoint: exit 2 and one line, no traceback."""
    from transfer.__main__ import main
    assert main(["finegrained", "--backbone", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)]) == 2
    assert "does not exist; run its pretraining experiment first" in capsys.readouterr().err
    r18 = tiny_backbone(tmp_path / "r18.safetensors", arch="resnet18")
    assert main(["finegrained", "--task", "pets", "--backbone", str(r18), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "holds a timm 'resnet18'" in err and len(err.strip().splitlines()) == 1


def test_every_table8_and_table9_cell_has_a_registered_experiment():
    from relabel import launch
    from results import tables
    import transfer.experiments  # noqa: F401  (registers)
    registry = launch.discover()
    sources = [s for t in (tables.TABLE8, tables.TABLE9) for r in t.rows for s in r.sources if s]
    assert len(sources) == 4 * 5 + 2 * 3
    for src in sources:
        assert src.experiment in registry, src.experiment
        assert src.evaluator in registry[src.experiment].evaluators


def test_torchvision_reader_takes_file_lists_and_slices_a_holdout(tmp_path, monkeypatch):
    """Full scale reads torchvision's dataset classes; Food-101 has no val split, so 20% of train is held out."""
    import torchvision.datasets as tvd
    calls = []

    class FakeFood101:
        classes = ["apple_pie", "bibimbap"]

        def __init__(self, root, split, download, **kw):
            calls.append((split, download))
            n = 10 if split == "train" else 4
            self._image_files = [Path(root) / "food-101" / "images" / self.classes[i % 2] / f"{split}{i}.jpg"
                                 for i in range(n)]
            self._labels = [i % 2 for i in range(n)]

    monkeypatch.setattr(tvd, "Food101", FakeFood101)
    (tmp_path / "food").mkdir()
    cfg = FG.get_config("full", "food101", root=str(tmp_path / "food"))
    splits, classes = FG.load_splits(cfg)
    assert classes == ["apple_pie", "bibimbap"] and calls == [("train", False), ("test", False)]
    assert [len(splits[k].samples) for k in ("fit", "holdout", "test")] == [8, 2, 4]
    assert splits["holdout"].name == "train[20% stratified slice]" and splits["fit"].name == "train[rest]"
    assert splits["test"].samples[0].path == "food-101/images/apple_pie/test0.jpg"  # relative to the root
    assert not {s.path for s in splits["fit"].samples} & {s.path for s in splits["holdout"].samples}


def _stamp_current(ckpt, experiment_id: str) -> None:
    """Stamps a checkpoint's workdir with the experiment's current recipe, as its run would have (an unstamped
    checkpoint is never trusted: ensure_checkpoint would train the real one)."""
    from relabel import launch, stamped
    exp = launch.discover()[experiment_id]
    stamped.write_stamp(ckpt.parent / launch.RECIPE_STAMP, exp.recipe("mini", 0))


def test_launcher_run_writes_a_grid_record_that_fills_table8(tmp_path, monkeypatch):
    """`make table8` for one cell: launcher → ensure_checkpoint → grid → one record → both Table 8 rows."""
    from relabel import launch
    from relabel import records as R
    from results import render, tables
    import transfer.experiments  # noqa: F401  (registers)
    root = _task_folder(tmp_path / "pets")
    tiny = FG.get_config("mini", "pets", root=str(root), world="", input_size=16, max_steps=2, batch_size=8,
                         lrs=(0.05,), weight_decays=(0.0, 1e-4), cache_images=False)
    monkeypatch.setattr(FG, "get_config", lambda scale, task: tiny)
    ckpt = launch.checkpoint_path("pretrain/resnet50/relabel", "mini", 0)  # as the pretraining run leaves it
    ckpt.parent.mkdir(parents=True)
    tiny_backbone(ckpt)
    _stamp_current(ckpt, "pretrain/resnet50/relabel")
    records = tmp_path / "records.jsonl"
    job = launch.Job("transfer/finegrained/pets/relabel", 0, frozenset({"grid"}), True)
    launch.run_job(job, "mini", records, launch.discover())
    (rec,) = R.read(records)
    assert rec["evaluator"] == "grid" and rec["scale"] == "mini" and rec["seed"] == 0
    train = rec["config"]["train"]
    assert train["backbone"] == "pretrain/resnet50/relabel" and train["max_steps"] == 2
    assert train["backbone_recipe_hash"]  # the pretraining recipe the backbone was trained under
    assert rec["extra"]["backbone_sha256"] == file_sha256(ckpt)
    assert rec["dataset"]["size"] == 12 and rec["dataset"]["holdout"] == {"name": "val", "size": 12}
    assert len(rec["extra"]["grid"]) == 2 and rec["wall_time_s"] > 0
    computed = render.compute(tables.TABLE8, [rec], "mini")
    for row in ("relabel_paper", "relabel_honest"):
        assert computed.cells[row, "pets"].n == 1
    assert computed.cells["relabel_paper", "pets"].mean == rec["metrics"]["top1_best_on_test"]

    # the record's recipe is current under today's recipes, and becomes stale when the transfer config or the
    # backbone's pretraining recipe changes (make ignores it and runs the cell again)
    registry = launch.discover()
    exp = registry["transfer/finegrained/pets/relabel"]
    assert exp.recipe_current(rec)
    # scored on a task folder outside the mini world, it names no world's test sets, so as an evaluation it never
    # counts at mini (a record of the world's test splits carries them: relabel.launch.on_current_test_sets)
    assert "test_sets" not in rec["config"] and not exp.is_current(rec)
    assert exp.is_current({**rec, "config": {**rec["config"], "test_sets": launch.expected_test_sets("mini")}})
    monkeypatch.setattr(FG, "get_config", lambda scale, task: tiny.replace(max_steps=3))
    assert not exp.recipe_current(rec)
    monkeypatch.setattr(FG, "get_config", lambda scale, task: tiny)
    pre = registry["pretrain/resnet50/relabel"]
    monkeypatch.setitem(launch._REGISTRY, pre.id, dataclasses.replace(
        pre, recipe=lambda scale, seed: {**pre.recipe(scale, seed), "epochs": 999}))
    assert not exp.recipe_current(rec)


def test_a_backbone_of_an_earlier_pretraining_recipe_is_refused(tmp_path, monkeypatch):
    """A checkpoint whose pretraining records are all stale predates the current recipe: transfer refuses it."""
    from relabel import launch
    from relabel import records as R
    from transfer.experiments import current_backbone
    ckpt = launch.checkpoint_path("pretrain/resnet50/original", "mini", 0)
    ckpt.parent.mkdir(parents=True)
    tiny_backbone(ckpt)
    _stamp_current(ckpt, "pretrain/resnet50/original")
    records = tmp_path / "records.jsonl"
    assert current_backbone("baseline", "mini", 0, records) == str(ckpt)  # no records: nothing says it is stale
    exp = launch.discover()["pretrain/resnet50/original"]
    train = json.loads(json.dumps(exp.recipe("mini", 0)))
    old = R.make_record(experiment=exp.id, evaluator="val", metrics={"top1": 50.0},
                        config={"train": {**train, "epochs": 1}}, scale="mini", seed=0,
                        dataset={"name": "w", "split": "val", "size": 1}, wall_time_s=1.0)
    R.append(records, old)
    with pytest.raises(CheckpointError, match="earlier recipe of pretrain/resnet50/original.*retrain it"):
        current_backbone("baseline", "mini", 0, records)
    R.append(records, {**old, "record_id": "x" * 32, "config": {"train": train},  # retrained since
                       "config_hash": R.config_hash({"train": train})})
    assert current_backbone("baseline", "mini", 0, records) == str(ckpt)


def test_fine_tuning_starts_from_a_new_classifier(tmp_path):
    """Mini Food has 10 classes like the pretraining digits: the pretrained classifier must still not be reused."""
    bb = open_backbone(tiny_backbone(tmp_path / "bb.safetensors"), "resnet50")
    trunk = bb.trunk_state()
    assert set(bb.state) - set(trunk) == {"fc.weight", "fc.bias"}
    assert all(torch.equal(trunk[k], bb.state[k]) for k in trunk)


def test_finegrained_grid_refuses_or_sets_aside_work_of_another_config(tmp_path):
    root = _task_folder(tmp_path / "dtd")
    cfg = FG.get_config("mini", "dtd", root=str(root), input_size=16, max_steps=2, batch_size=8, lrs=(0.01,),
                        weight_decays=(0.0,), cache_images=False)
    bb = open_backbone(tiny_backbone(tmp_path / "bb.safetensors"), "resnet50")
    FG.run_grid(cfg, bb, tmp_path / "wd", seed=0, log=lambda *_: None)
    with pytest.raises(RuntimeError, match="another config, backbone checkpoint or test split; delete"):
        FG.run_grid(cfg.replace(max_steps=3), bb, tmp_path / "wd", seed=0, log=lambda *_: None)
    other = open_backbone(tiny_backbone(tmp_path / "other.safetensors", seed=1), "resnet50")
    with pytest.raises(RuntimeError, match="another config, backbone checkpoint or test split; delete"):
        FG.run_grid(cfg, other, tmp_path / "wd", seed=0, log=lambda *_: None)
    # a half-trained point (started, not scored) of another backbone is caught as well
    (tmp_path / "wd" / "grid" / "lr0.01_wd0.json").unlink()
    with pytest.raises(RuntimeError, match="another config, backbone checkpoint or test split; delete"):
        FG.run_grid(cfg, other, tmp_path / "wd", seed=0, log=lambda *_: None)
    # under make (on_stale='set_aside') the old work is moved aside and the grid trains afresh
    res = FG.run_grid(cfg, other, tmp_path / "wd", seed=0, log=lambda *_: None, on_stale="set_aside")
    assert res["points"][0]["steps"] == 2
    assert len(list((tmp_path / "wd").glob("grid.stale-*"))) == 1
    again = FG.run_grid(cfg, other, tmp_path / "wd", seed=0, log=lambda *_: None)  # now current: reused
    assert again["points"] == res["points"]
    # a grid scored on another test split (issue 25: the test sets grew) is scored again, not reused
    test_image = next((root / "test").rglob("*.png"))
    shutil.copy(test_image, test_image.with_name("added.png"))
    with pytest.raises(RuntimeError, match="another config, backbone checkpoint or test split; delete"):
        FG.run_grid(cfg, other, tmp_path / "wd", seed=0, log=lambda *_: None)
    res = FG.run_grid(cfg, other, tmp_path / "wd", seed=0, log=lambda *_: None, on_stale="set_aside")
    assert len(list((tmp_path / "wd").glob("grid.stale-*"))) == 2

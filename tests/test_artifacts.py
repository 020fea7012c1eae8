"""The one artifact primitive (issue 14, items 1 and 4): rank-aware under torchrun, stamped with its inputs'
identity, a stale or unstamped one set aside; records and store names follow the annotator; recipes never fail
silently."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from relabel import launch, stamped
from relabel import records as R

REPO = Path(__file__).resolve().parent.parent

# A tiny registered experiment run through relabel.launch.run_job by every rank: like the trainer, it joins the
# process group inside the job; it needs one artifact rank 0 builds alone and one every rank builds together.
_JOB = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    import torch
    import torch.distributed as dist
    from relabel import launch, stamped
    from relabel import records as R
    from relabel.dist import init_distributed

    out = Path(sys.argv[1])
    (out / f"pid{os.environ['RANK']}").write_text(str(os.getpid()))  # for the test to stop a hung rank

    def log(line):
        with open(out / "builds.txt", "a") as f:
            f.write(line + "\\n")

    def run(ctx):
        info = init_distributed()  # as relabel.train.train does inside a job
        rank = info.rank

        def build_shared():  # rank 0 alone; the others wait at the artifact's barrier
            log(f"shared {rank}")
            (out / "shared.txt").write_text("made once")

        def build_sharded():  # collective: every rank must enter, or the all_reduce never returns
            t = torch.ones(1)
            dist.all_reduce(t)
            log(f"sharded {rank} {int(t.item())}")
            if rank == 0:
                (out / "sharded.txt").write_text("done")

        for _ in range(2):  # asked twice: built once
            stamped.artifact(out / "shared.txt", {"inputs": 1}, build_shared)
            stamped.artifact(out / "sharded.txt", {"inputs": 1}, build_sharded, collective=True)
        assert (out / "shared.txt").read_text() == "made once"  # every rank sees it after the barrier
        ctx.append(R.make_record(experiment=ctx.experiment, evaluator="val", metrics={"written_by_rank": rank},
                                 config={"train": ctx.recipe}, scale=ctx.scale, seed=ctx.seed,
                                 dataset={"name": "none", "split": "val", "size": 0}, wall_time_s=0.0))

    exp = launch.Experiment("test/tiny", frozenset({"val"}), run, recipe=lambda scale, seed: {"inputs": 1})
    launch.run_job(launch.Job("test/tiny", 0, frozenset({"val"}), True), "mini", out / "records.jsonl",
                   {"test/tiny": exp})
''')


def test_torchrun_two_ranks_build_a_shared_artifact_once_and_write_one_record(tmp_path):
    """Item 1: under torchrun the job lock used to be taken by every rank before the process group existed (rank 1
    on the lock, rank 0 in init_process_group: a hang). Now: no hang, the shared artifact built once by rank 0, the
    collective one by both ranks together, one record, written by rank 0."""
    script = tmp_path / "job.py"
    script.write_text(_JOB)
    env = {**os.environ, "RELABEL_RUNS": str(tmp_path / "runs"), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = Path(sys.executable).with_name("torchrun")
    log = tmp_path / "torchrun.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
                                cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            for pid in [proc.pid] + [int(p.read_text()) for p in tmp_path.glob("pid*")]:  # (ranks: own sessions)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
            pytest.fail(f"torchrun with 2 ranks hung (killed after 90 s):\n{log.read_text()[-3000:]}")
    assert proc.returncode == 0, log.read_text()[-3000:]
    builds = sorted((tmp_path / "builds.txt").read_text().splitlines())
    assert builds == ["sharded 0 2", "sharded 1 2", "shared 0"]
    recs = R.read(tmp_path / "records.jsonl")
    assert len(recs) == 1 and recs[0]["metrics"] == {"written_by_rank": 0}
    wd = launch.workdir("test/tiny", "mini", 0).relative_to(launch.runs_root())
    assert launch.stamped_recipe(tmp_path / "runs" / wd) == R.config_hash({"inputs": 1})


def test_an_artifact_is_rebuilt_when_its_inputs_change_and_an_unstamped_one_is_never_trusted(tmp_path):
    path, calls = tmp_path / "store", []

    def build(text):
        def make():
            calls.append(text)
            path.mkdir()
            (path / "data").write_text(text)
        return make

    stamped.artifact(path, {"annotator": "A"}, build("A"), log=lambda m: None)
    stamped.artifact(path, {"annotator": "A"}, build("A again"), log=lambda m: None)
    assert calls == ["A"]  # same inputs: reused
    stamped.artifact(path, {"annotator": "B"}, build("B"), log=lambda m: None)
    old = R.config_hash({"annotator": "A"})
    assert calls == ["A", "B"] and (path / "data").read_text() == "B"
    assert (tmp_path / f"store.stale-{old}" / "data").read_text() == "A"  # kept beside, with its stamp
    assert json.loads((tmp_path / f"store.identity.json.stale-{old}").read_text())["identity"] == {"annotator": "A"}
    # made before stamps (or by hand): set aside, made again
    (tmp_path / "store.identity.json").unlink()
    stamped.artifact(path, {"annotator": "B"}, build("B2"), log=lambda m: None)
    assert calls == ["A", "B", "B2"] and (tmp_path / "store.stale-unstamped" / "data").read_text() == "B"


def test_a_recipe_that_fails_makes_is_current_fail_and_only_a_missing_setting_is_tolerated():
    rec = {"experiment": "x", "scale": "full", "seed": 0, "config": {"train": {"lr": 0.1}}}
    buggy = launch.Experiment("x", frozenset({"val"}), lambda ctx: None, recipe=lambda scale, seed: {"lr": 1 / 0})
    with pytest.raises(ZeroDivisionError):
        buggy.is_current(rec)
    with pytest.raises(ZeroDivisionError):
        launch.recipe_hash(buggy, "full", 0)

    def unavailable(scale, seed):
        raise launch.RecipeUnavailable("full scale needs the annotator 'default': set RELABEL_ANNOTATOR_CKPT")
    unset = launch.Experiment("x", frozenset({"val"}), lambda ctx: None, recipe=unavailable)
    assert unset.is_current(rec) and launch.recipe_hash(unset, "full", 0) is None  # cannot judge: kept


def _full_relabel_recipe():
    return launch._as_stored(launch.discover()["pretrain/resnet50/relabel"].recipe("full", 0))


def test_another_annotator_gets_another_store_and_the_records_of_the_old_maps_go_stale(tmp_path, monkeypatch):
    """Item 4: full-scale stores were named `default-*` whatever the annotator, and the records stayed current."""
    from pretrain import artifacts as A
    from pretrain.config import get_config
    ckpt_a, ckpt_b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    ckpt_a.write_bytes(b"annotator A")
    ckpt_b.write_bytes(b"annotator B")
    monkeypatch.delenv("RELABEL_OFFICIAL_MAPS", raising=False)
    monkeypatch.setenv("RELABEL_ANNOTATOR_CKPT", str(ckpt_a))
    registry = launch.discover()
    relabel, original = registry["pretrain/resnet50/relabel"], registry["pretrain/resnet50/original"]
    rec = {"scale": "full", "seed": 0, "config": {"train": _full_relabel_recipe()}}
    rec_original = {"scale": "full", "seed": 0,
                    "config": {"train": launch._as_stored(original.recipe("full", 0))}}
    store_a = A._store_path(get_config("full"), "float32", 5)
    assert relabel.is_current(rec)

    monkeypatch.setenv("RELABEL_ANNOTATOR_CKPT", str(ckpt_b))
    store_b = A._store_path(get_config("full"), "float32", 5)
    assert store_a != store_b and store_b.name.startswith("default@sha-")
    assert not relabel.is_current(rec)  # made with maps A: stale under maps B, so make runs it again
    assert original.is_current(rec_original)  # a row that reads no annotator is unaffected

    # the official release: named and stamped by its fingerprint, yet another store; B's records stale under it
    official = tmp_path / "imagenet_efficientnet_l2_sz475_top5"
    for wnid in ("n01440764", "n01443537"):
        (official / wnid).mkdir(parents=True)
        torch.save(torch.zeros(2, 5, 15, 15), official / wnid / f"{wnid}_1.pt")
    rec_b = {"scale": "full", "seed": 0, "config": {"train": _full_relabel_recipe()}}
    monkeypatch.setenv("RELABEL_OFFICIAL_MAPS", str(official))
    store_off = A._store_path(get_config("full"), "float32", 5)
    assert store_off.name.startswith("default@official-") and store_off not in (store_a, store_b)
    assert not relabel.is_current(rec_b)


def test_full_scale_without_an_annotator_says_so_instead_of_judging_records(monkeypatch):
    monkeypatch.delenv("RELABEL_OFFICIAL_MAPS", raising=False)
    monkeypatch.delenv("RELABEL_ANNOTATOR_CKPT", raising=False)
    relabel = launch.discover()["pretrain/resnet50/relabel"]
    with pytest.raises(launch.RecipeUnavailable, match="set RELABEL_ANNOTATOR_CKPT"):
        relabel.recipe("full", 0)
    assert relabel.is_current({"scale": "full", "seed": 0, "config": {"train": {}}})  # cannot judge: kept

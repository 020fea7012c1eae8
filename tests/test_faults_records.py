"""Fault injection for the records and the make driver (issue 28): a torn records tail, two `make`s at once on one
cell, a smoke render beside the real one, a table with missing cells, a read-only data root, a kill before the first
step checkpoint.

Each case asserts on what a user sees (the message names the file, at most 3 lines, no traceback), the exit status,
and that every earlier record and file is byte-identical afterwards. The two-`make`s cases run the real driver
(`python -m results.make`, the launcher, the records) in subprocesses with one stand-in experiment registered under
Fig. 2's id `analysis/crop_iou` (a run that sleeps, then writes its record), so they need no mini world.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relabel import launch, records as R, stamped
from relabel import configs
from results import make

ROOT = Path(__file__).resolve().parents[1]
CELL = "analysis/crop_iou"  # Fig. 2's one experiment: the tiniest cell a target reads
METRICS = {"no_overlap_pct": 8.6, "iou_gt_05_pct": 22.8, "cdf_iou": [0.0, 0.5, 1.0], "cdf": [0.1, 0.6, 1.0]}


def _rec(seed=0, experiment="pretrain/resnet50/relabel", evaluator="val", **kw):
    return R.make_record(experiment=experiment, evaluator=evaluator, metrics=kw.pop("metrics", {"top1": 50.0}),
                         config=kw.pop("config", {"lr": 0.1}), scale="mini", seed=seed,
                         dataset={"name": "fake", "split": "val", "size": 1}, wall_time_s=0.0, **kw)


def _short(text: str) -> None:
    """A user-facing message: no traceback, at most 3 lines."""
    assert "Traceback" not in text, text
    assert 0 < len(text.strip().splitlines()) <= 3, text


# ---- 1. a torn tail, then an append ------------------------------------------------------------------------------
def test_torn_tail_is_moved_aside_and_the_next_record_starts_on_a_fresh_line(tmp_path):
    path = tmp_path / "mini.jsonl"
    for s in range(3):
        R.append(path, _rec(seed=s))
    earlier = path.read_bytes()
    torn = json.dumps(_rec(seed=7), sort_keys=True).encode()[:150]  # a disk-full append: the line cut mid-way
    with open(path, "ab") as f:
        f.write(torn)
    with pytest.raises(R.RecordError, match=r"mini\.jsonl:4: .*interrupted write.*mini\.jsonl\.torn"):
        R.read(path)  # before the next append: named, with where it will go, never skipped silently
    warnings = []
    new = _rec(seed=3)
    assert R.append(path, new, warn=warnings.append)
    assert path.read_bytes().startswith(earlier)  # every earlier record byte-identical
    assert R.read(path)[-1] == new and len(R.read(path)) == 4  # the new record readable, not glued to the torn one
    assert (tmp_path / "mini.jsonl.torn").read_bytes() == torn + b"\n"  # the torn bytes kept, not lost
    assert len(warnings) == 1 and "mini.jsonl.torn" in warnings[0] and str(path) in warnings[0]
    _short(warnings[0])


def test_a_complete_last_record_without_its_line_break_is_kept(tmp_path):
    path = tmp_path / "mini.jsonl"
    first = _rec(seed=0)
    path.write_bytes(json.dumps(first, sort_keys=True, separators=(",", ":")).encode())  # no "\n"
    R.append(path, _rec(seed=1), warn=lambda m: pytest.fail(m))
    assert [r["seed"] for r in R.read(path)] == [0, 1] and not (tmp_path / "mini.jsonl.torn").exists()


def test_the_cli_names_the_torn_line_in_one_sentence(tmp_path):
    recs = tmp_path / "extra.jsonl"
    R.append(recs, _rec())
    with open(recs, "ab") as f:
        f.write(b'{"schema":1,"record_id":"ab')
    p = subprocess.run([sys.executable, "-m", "results.make", "--list", "--records", str(recs)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2
    assert "extra.jsonl:2:" in p.stderr and "extra.jsonl.torn" in p.stderr
    _short(p.stderr)


# ---- 2. two makes at once ----------------------------------------------------------------------------------------
def test_an_append_never_repeats_a_record_and_the_renderer_refuses_a_file_that_does(tmp_path):
    path = tmp_path / "mini.jsonl"
    notes = []
    assert R.append(path, _rec(seed=0), warn=notes.append)
    before = path.read_bytes()
    assert not R.append(path, _rec(seed=0), warn=notes.append)  # same measurement, another run: not appended
    assert path.read_bytes() == before and "already holds" in notes[0]
    assert R.append(path, _rec(seed=1))  # another seed is another record
    assert R.duplicates(path) is None
    with open(path, "a") as f:  # what two makes wrote before appends refused it
        f.write(json.dumps(_rec(seed=1), sort_keys=True) + "\n")
    msg = R.duplicates(path)
    assert msg.startswith(f"{path}:3 repeats the record on line 2") and "delete one of the two lines" in msg
    _short(msg)
    with pytest.raises(make.UsageError, match="repeats the record"):
        make.load_records([path])
    # the same record in two files (a run's record and its published copy) is no duplicate
    copy = tmp_path / "published.jsonl"
    copy.write_bytes(before)
    assert R.duplicates(copy) is None and len(make.load_records([path.with_name("none.jsonl"), copy])) == 1


STAND_IN = f"""
import os, sys, time
sys.path.insert(0, {str(ROOT)!r})
from relabel import launch, records as R, stamped

def run(ctx):  # stands in for a training run: slow, then one record per evaluator
    print("RUNNING", flush=True)
    time.sleep(float(os.environ.get("STAND_IN_SLEEP", "0")))
    for ev in ctx.evaluators:
        ctx.append(R.make_record(experiment=ctx.experiment, evaluator=ev, metrics={METRICS!r},
                                 config={{"n": 1, "test_sets": launch.expected_test_sets(ctx.scale)}},
                                 scale=ctx.scale, seed=ctx.seed, dataset={{"name": "w", "split": "val", "size": 1}},
                                 wall_time_s=0.0))

launch._REGISTRY.clear()
launch.register({CELL!r}, {{"crop_iou"}})(run)
launch._DISCOVERED = True
from results import make
sys.exit(make.main(sys.argv[1:]))
"""


def _make(tmp_path, name, *args, sleep=0.0):
    log = tmp_path / f"{name}.log"
    env = {**os.environ, "STAND_IN_SLEEP": str(sleep), "PYTHONPATH": str(ROOT)}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", STAND_IN, *args], cwd=ROOT, env=env, stdout=f,
                                stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _wait_for(proc, text, timeout=120):
    deadline = time.monotonic() + timeout
    while text not in proc.log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"never saw {text!r}:\n{proc.log.read_text()}")
        time.sleep(0.05)


def test_a_second_make_waits_for_the_cell_the_first_runs_then_skips_it(tmp_path, isolated_runs, monkeypatch):
    """Deterministic: this test holds the cell's lock as a first `make` would, the driver waits naming the holder,
    and when the first one's record is there it runs nothing and appends nothing."""
    out = tmp_path / "rendered"
    wd = launch.workdir(CELL, "mini", 0)
    wd.mkdir(parents=True)
    with stamped.artifact_lock(wd / "job"):
        second = _make(tmp_path, "second", "fig2", "--set", "epochs=1", "--out", str(out), "--jobs", "1")
        _wait_for(second, "waiting for")
        log = second.log.read_text()
        assert f"{wd / 'job.lock'}, held by pid {os.getpid()} on host" in log  # the holder named: pid and host
        monkeypatch.setattr(configs, "_ACTIVE", {"epochs": 1})  # the first make's record, under the same --set
        R.append(R.default_records_path("mini"), R.make_record(
            experiment=CELL, evaluator="crop_iou", metrics=METRICS,
            config={"n": 1, "test_sets": launch.expected_test_sets("mini")}, scale="mini", seed=0,
            dataset={"name": "w", "split": "val", "size": 1}, wall_time_s=0.0))
        before = R.default_records_path("mini").read_bytes()
    assert second.wait(120) == 0, second.log.read_text()
    log = second.log.read_text()
    assert "RUNNING" not in log and "skipping" in log
    assert R.default_records_path("mini").read_bytes() == before  # no second record


@pytest.mark.slow  # ~20 s: two drivers start, one runs 4 s
def test_two_makes_at_once_on_one_cell_write_one_record_and_smoke_renders_apart(tmp_path, isolated_runs):
    out = tmp_path / "rendered"
    real = out / "mini" / "fig2.md"
    real.parent.mkdir(parents=True)
    real.write_text("the real table, rendered from real records\n")
    args = ("fig2", "--set", "epochs=1", "--out", str(out), "--jobs", "1")
    first = _make(tmp_path, "first", *args, sleep=4.0)
    _wait_for(first, "RUNNING")
    second = _make(tmp_path, "second", *args, sleep=4.0)
    assert first.wait(120) == 0, first.log.read_text()
    assert second.wait(120) == 0, second.log.read_text()
    recs = R.read(R.default_records_path("mini"))
    assert len(recs) == 1 and recs[0]["overrides"] == {"epochs": 1}  # once, carrying its overrides
    assert second.log.read_text().count("RUNNING") == 0
    assert real.read_text() == "the real table, rendered from real records\n"  # the real render untouched
    for ext, first_line in (("md", "> **SMOKE RUN"), ("tex", "% SMOKE RUN"), ("csv", "# SMOKE RUN")):
        text = (out / "mini" / "smoke" / f"fig2.{ext}").read_text()
        assert text.startswith(first_line) and "--set epochs=1" in text.splitlines()[0]
    # the real render (no --set) never reads the smoke record: the cell stays missing, and says so
    p = subprocess.run([sys.executable, "-m", "results.make", "fig2", "--no-run", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 4 and "fig2/ours/{no_overlap,iou_gt_05}" in p.stderr
    _short(p.stderr)
    assert "SMOKE" not in real.read_text() and "8.6" not in real.read_text()


# ---- 3. a table asked for cells that have no record --------------------------------------------------------------
def test_missing_extra_row_exits_non_zero_naming_the_cells(tmp_path, capsys):
    """The issue's case: Table 2's five paper rows recorded, the oracle row (an extra row) absent."""
    recs, registry = tmp_path / "t2.jsonl", launch.discover()
    for row in ("relabel", "localized_single", "global_multi", "global_single", "original"):
        exp = f"pretrain/resnet50/{row}"
        recipe = launch._recipe(registry[exp], "mini", 0)  # records of the current recipe (else: stale, ignored)
        for ev in ("val", "real"):
            R.append(recs, _rec(experiment=exp, evaluator=ev, metrics={"top1": 50.0},
                                config={"train": recipe, "test_sets": launch.expected_test_sets("mini")}))
    out = tmp_path / "rendered"
    assert make.main(["table2", "--no-run", "--out", str(out), "--records", str(recs)]) == 0  # 10/10 asked for
    capsys.readouterr()
    status = make.main(["table2", "--no-run", "--extra-rows", "--out", str(out), "--records", str(recs)])
    cap = capsys.readouterr()
    assert status == 4 and "10/12 cells filled" in cap.out
    assert "error: 2 cell(s) asked for have no record: table2/relabel_oracle/{top1,real} (extra row)" in cap.err
    assert "--allow-missing" in cap.err
    _short(cap.err)
    assert make.main(["table2", "--no-run", "--extra-rows", "--allow-missing", "--out", str(out),
                      "--records", str(recs)]) == 0
    assert "—" in (out / "mini" / "table2.md").read_text()


# ---- 4. a read-only data root ------------------------------------------------------------------------------------
def test_a_complete_world_in_a_read_only_root_is_read_without_a_lock(tmp_path, monkeypatch):
    """Simulated: the tests run as root, for whom chmod stops no write, and a read-only bind mount needs
    privileges a test does not have; so os.access reports the root unwritable (as it does on a read-only mount)
    and the test checks that no lock or other file is written there."""
    from relabel.data import world as W
    from tests.test_miniworld import SMALL
    root = tmp_path / "data"
    final = W.ensure_world(root, seed=0, log=lambda _: None, **SMALL)
    for lock in root.glob(".*.lock"):
        lock.unlink()
    listing = sorted(p.relative_to(root) for p in root.rglob("*"))
    real_access = os.access
    monkeypatch.setattr(W.os, "access", lambda p, mode, *a, **k: False if Path(p) == root and mode == os.W_OK
                        else real_access(p, mode, *a, **k))
    logs = []
    assert W.ensure_world(root, seed=0, log=logs.append, **SMALL) == final
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == listing  # nothing written, no lock taken
    assert "read-only" in logs[0]
    with pytest.raises(W.WorldNotWritable) as e:  # a world that is not there cannot be built in a read-only root
        W.ensure_world(root, seed=1, log=lambda _: None, **SMALL)
    assert str(root) in str(e.value) and "RELABEL_DATA" in str(e.value)
    _short(str(e.value))


def test_a_lock_in_an_unwritable_folder_is_one_sentence_naming_it(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where a folder should be")  # mkdir fails there, as in a read-only folder
    with pytest.raises(stamped.LockUnavailable) as e:
        with stamped.artifact_lock(blocker / "mini" / "job"):
            pass
    assert "must be writable" in str(e.value) and str(blocker / "mini") in str(e.value)
    assert isinstance(e.value, launch.user_errors())  # the drivers print it as one sentence
    _short(str(e.value))


# ---- 5. a kill before the first step checkpoint ------------------------------------------------------------------
@pytest.mark.slow  # ~17 s: three training processes
def test_a_kill_before_the_first_step_checkpoint_resumes_from_the_timed_one(tmp_path):
    """ckpt_every is larger than the run, so only the clock ($RELABEL_CKPT_MINUTES, tiny here) saves: the killed
    run resumes from that checkpoint, says so, and ends bit-identical to an uninterrupted run."""
    import torch
    from tests.test_resume import finish, kill_when, start
    from tests.test_train import _folder
    samples = _folder(tmp_path / "data")
    code = (f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); os.environ['RELABEL_CKPT_MINUTES'] = '0.0001'\n"
            "from pathlib import Path\nimport torch\n"
            "from relabel import train as TR\nfrom relabel.loader import TrainSet\n"
            "from tests.test_train import TINY, _folder\n"
            "cfg = TR.TrainConfig(**{**TINY, 'ckpt_every': 10**6, 'epochs': 30})\n"
            f"samples = _folder(Path({str(tmp_path / 'data')!r}), write=False)\n"
            f"ds = TrainSet({str(tmp_path / 'data')!r}, samples, TR.train_transform_for(cfg), seed=cfg.seed)\n"
            "wd = Path(sys.argv[1])\n"
            "res = TR.train(cfg, ds, wd, progress=False)\n"
            "torch.save(res.model.state_dict(), wd / 'final.pt')\n")
    straight = start(code.replace("sys.argv[1]", repr(str(tmp_path / "a"))), tmp_path / "a.log")
    killed = start(code.replace("sys.argv[1]", repr(str(tmp_path / "b"))), tmp_path / "b.log")
    kill_when(killed, (tmp_path / "b" / "last.pt").exists, "a timed checkpoint was written")
    at = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"]
    assert 1 <= at < 120  # mid-run, before any step checkpoint (ckpt_every is 10**6)
    rc, log = finish(start(code.replace("sys.argv[1]", repr(str(tmp_path / "b"))), tmp_path / "b2.log"))
    assert rc == 0, log
    assert "resuming" in log and str(tmp_path / "b" / "last.pt") in log and "at step" in log
    rc, log = finish(straight)
    assert rc == 0, log
    a = torch.load(tmp_path / "a" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "final.pt", weights_only=True)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", b"not a checkpoint at all"])
def test_a_damaged_resume_checkpoint_is_one_sentence_naming_it(tmp_path, content):
    from relabel import train as TR
    from relabel.checkpoint import CheckpointError
    from relabel.loader import TrainSet
    from tests.test_train import TINY, _folder
    samples = _folder(tmp_path / "data")
    cfg = TR.TrainConfig(**TINY)
    ds = TrainSet(str(tmp_path / "data"), samples, TR.train_transform_for(cfg), seed=cfg.seed)
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "last.pt").write_bytes(content)
    with pytest.raises(CheckpointError) as e:
        TR.train(cfg, ds, tmp_path / "wd", progress=False)
    msg = str(e.value)
    assert str(tmp_path / "wd" / "last.pt") in msg and "delete it" in msg and len(msg.splitlines()) == 1
    assert (tmp_path / "wd" / "last.pt").read_bytes() == content  # nothing is overwritten behind the user


def test_the_checkpoint_interval_enters_no_recipe(monkeypatch):
    from relabel import train as TR
    from relabel.configs import ConfigError
    monkeypatch.setenv(TR.CKPT_MINUTES_ENV, "0.5")
    assert TR.checkpoint_seconds() == 30
    assert "ckpt_minutes" not in TR.TrainConfig().to_dict() and TR.CKPT_MINUTES_ENV not in json.dumps(
        TR.TrainConfig().to_dict())
    monkeypatch.setenv(TR.CKPT_MINUTES_ENV, "soon")
    with pytest.raises(ConfigError, match="RELABEL_CKPT_MINUTES must be a positive number"):
        TR.checkpoint_seconds()


# ---- 6. the entry scripts run the checkout they sit in -----------------------------------------------------------
@pytest.mark.parametrize("script", ["eval_real/run.py", "robustness/run.py"])
def test_entry_scripts_import_the_checkout_they_sit_in(script, tmp_path):
    """Run from elsewhere, without PYTHONPATH: `relabel` must come from this checkout, not from whatever checkout
    the environment's editable install points at (with two checkouts, the other one's code and runs/)."""
    path = ROOT / script
    code = (f"import runpy, sys\nsys.argv = [{str(path)!r}, '--help']\n"
            f"try:\n    runpy.run_path({str(path)!r}, run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "import relabel\nprint('RELABEL', relabel.__file__)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"RELABEL {ROOT / 'relabel' / '__init__.py'}" in p.stdout

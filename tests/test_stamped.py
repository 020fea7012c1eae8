"""relabel.stamped, the artifact primitive: the one stale-work policy (stale work set aside beside itself, never
deleted; current work kept; unstamped work never trusted; a refusal in one sentence), the identity stamp, the lock
and the atomic stamp write."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relabel import records as R
from relabel import stamped

ROOT = Path(__file__).resolve().parents[1]


def _work(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "last.pt").write_text(text)
    return folder


def test_stale_work_is_set_aside_beside_itself_not_deleted(tmp_path):
    work = _work(tmp_path / "train", "old weights")
    lines = []
    moved = stamped.set_aside_stale(work, "0123abcd", False, "was trained under an earlier recipe",
                                    say=lines.append)
    assert moved == [tmp_path / "train.stale-0123abcd"] and not work.exists()
    assert (moved[0] / "last.pt").read_text() == "old weights"  # kept, under the old identity's hash
    assert lines == [f"{work} was trained under an earlier recipe: set aside as .stale-0123abcd, starting afresh"]


def test_current_work_and_absent_work_are_left_alone(tmp_path):
    work = _work(tmp_path / "train", "weights")
    said = []
    assert stamped.set_aside_stale(work, "0123abcd", True, "never said", say=said.append) == []
    assert (work / "last.pt").read_text() == "weights"
    assert stamped.set_aside_stale(tmp_path / "absent", None, False, "never said", say=said.append) == []
    assert said == [] and sorted(p.name for p in tmp_path.iterdir()) == ["train"]


def test_unstamped_work_is_never_trusted_and_a_second_setting_aside_replaces_the_first(tmp_path):
    work = _work(tmp_path / "store", "first")
    stamped.set_aside_stale(work, None, False, "bears no stamp", say=lambda m: None)
    _work(work, "second")
    stamped.set_aside_stale(work, None, False, "bears no stamp", say=lambda m: None)
    assert (tmp_path / "store.stale-unstamped" / "last.pt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.stale-unstamped"]


def test_companions_go_with_the_work_and_contents_leave_the_folder_and_its_lock(tmp_path):
    (tmp_path / "model.safetensors").write_text("m")
    _work(tmp_path / "train", "t")
    stamped.set_aside_stale(tmp_path / "model.safetensors", "aa", False, "was made from other inputs (aa)",
                            companions=(tmp_path / "train", tmp_path / "absent"), say=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors.stale-aa", "train.stale-aa"]
    wd = tmp_path / "wd"
    wd.mkdir()
    for name in ("job.lock", "recipe.json", "model.safetensors", "old.stale-bb"):
        (wd / name).write_text(name)
    moved = stamped.set_aside_stale(wd, "cc", False, "held files of an earlier recipe (cc)", contents=True,
                                    say=lambda m: None)
    assert wd.is_dir() and sorted(p.name for p in moved) == ["model.safetensors.stale-cc", "recipe.json.stale-cc"]
    assert sorted(p.name for p in wd.iterdir()) == ["job.lock", "model.safetensors.stale-cc", "old.stale-bb",
                                                     "recipe.json.stale-cc"]


def test_refusing_stale_work_is_one_sentence_and_moves_nothing(tmp_path):
    work = _work(tmp_path / "grid", "points")
    with pytest.raises(stamped.StaleWorkError, match=r"grid holds a grid of another config; delete it to start over"):
        stamped.set_aside_stale(work, "dd", False, "holds a grid of another config", on_stale="refuse")
    assert (work / "last.pt").read_text() == "points"
    with pytest.raises(ValueError, match="on_stale must be one of"):
        stamped.set_aside_stale(work, "dd", False, "x", on_stale="delete")


def test_an_artifact_is_built_once_per_identity_and_a_stale_one_kept_beside(tmp_path):
    path, calls = tmp_path / "clean_list.json", []

    def build(text):
        return lambda: (calls.append(text), path.write_text(text))
    stamped.artifact(path, {"k": 5}, build("A"), log=lambda m: None)
    stamped.artifact(path, {"k": (5,)[0]}, build("A again"), log=lambda m: None)
    assert calls == ["A"]
    stamp = json.loads(stamped.stamp_path(path).read_text())
    assert stamp == {"hash": R.config_hash({"k": 5}), "identity": {"k": 5}}
    stamped.artifact(path, {"k": 6}, build("B"), log=lambda m: None)
    assert calls == ["A", "B"] and path.read_text() == "B"
    old = R.config_hash({"k": 5})
    assert (tmp_path / f"clean_list.json.stale-{old}").read_text() == "A"
    assert stamped.read_stamp(stamped.stamp_path(path)) == R.config_hash({"k": 6})
    assert not list(tmp_path.glob("*.tmp"))  # the stamp is written atomically: no temp file left


def test_the_lock_makes_a_second_process_wait_and_names_its_holder(tmp_path):
    lock = tmp_path / "store"
    code = textwrap.dedent(f"""
        import time
        from relabel import stamped
        with stamped.artifact_lock({str(lock)!r}):
            print("held", flush=True)
            time.sleep(3)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    finally:
        holder.wait(timeout=60)
    assert waiter.returncode == 0 and f"waiting for {lock}.lock, held by pid {holder.pid}" in waiter.stdout
    assert Path(str(lock) + ".lock").read_text().startswith("pid ")


def test_a_lock_in_a_read_only_folder_is_one_sentence(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(stamped.LockUnavailable, match="must be writable") as e:
        with stamped.artifact_lock(blocker / "job"):
            pass
    assert isinstance(e.value, FileNotFoundError)  # the drivers print it as one sentence

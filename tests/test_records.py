"""Run records: validation, provenance, atomic appends from concurrent writers, and loud corrupt-line errors."""
import json
import multiprocessing as mp

import pytest

from relabel import records as R


def _rec(**kw):
    base = dict(experiment="pretrain/resnet50/relabel", evaluator="val", metrics={"top1": 71.5},
                config={"lr": 0.1, "epochs": 2}, scale="mini", seed=0,
                dataset={"name": "mini", "split": "val", "size": 10}, wall_time_s=1.0)
    base.update(kw)
    return R.make_record(**base)


def test_record_has_provenance():
    rec = _rec()
    for key in ("schema", "config_hash", "git", "packages", "host", "created", "record_id", "final"):
        assert key in rec
    assert rec["git"]["sha"] is None or len(rec["git"]["sha"]) == 40
    assert "torch" in rec["packages"]
    assert rec["config_hash"] == R.config_hash({"epochs": 2, "lr": 0.1})  # key order does not matter
    assert rec["config_hash"] != R.config_hash({"epochs": 3, "lr": 0.1})


@pytest.mark.parametrize("bad, msg", [
    (dict(scale="huge"), "scale"), (dict(metrics={"top1": float("nan")}), "top1"),
    (dict(dataset={"name": "mini"}), "split"), (dict(experiment=3), "experiment")])
def test_invalid_records_are_refused(bad, msg):
    with pytest.raises((R.RecordError, ValueError, TypeError), match=msg):
        _rec(**bad)


def test_append_then_read_round_trip(tmp_path):
    path = tmp_path / "r.jsonl"
    recs = [_rec(seed=s) for s in range(3)]
    for r in recs:
        R.append(path, r)
    assert R.read(path) == recs
    assert R.read(tmp_path / "absent.jsonl") == []


def _writer(path, wid, n, pad):
    for i in range(n):
        rec = _rec(seed=i, metrics={"top1": float(i), "curve": [wid] * pad}, experiment=f"writer{wid}")
        R.append(path, rec)


def test_two_concurrent_writers_lose_and_interleave_nothing(tmp_path):
    # Lines of ~200 KB are far larger than a pipe/page buffer, so any non-atomic write would interleave.
    path, n, pad = tmp_path / "r.jsonl", 40, 40_000
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, n, pad)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = R.read(path)  # raises on any interleaved (= invalid JSON) line
    assert len(recs) == 2 * n
    for w in (1, 2):
        mine = [r for r in recs if r["experiment"] == f"writer{w}"]
        assert [r["seed"] for r in mine] == list(range(n))  # each writer's lines complete and in order
        assert all(r["metrics"]["curve"] == [w] * pad for r in mine)


def test_corrupt_line_is_reported_with_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    R.append(path, _rec())
    with open(path, "a") as f:
        f.write('{"half a record\n')
    R.append(path, _rec())
    with pytest.raises(R.RecordError, match=r"r\.jsonl:2:"):
        R.read(path)


def test_record_missing_a_field_is_reported(tmp_path):
    path = tmp_path / "r.jsonl"
    rec = _rec()
    del rec["metrics"]
    path.write_text(json.dumps(rec) + "\n")
    with pytest.raises(R.RecordError, match=r"r\.jsonl:1: missing field 'metrics'"):
        R.read(path)

"""The full-scale path on CPU: a fake data tree in the real on-disk layouts (relabel/data/fakefull.py), driven
through the entry points a researcher uses — the make driver with `--set` overrides (official-map import, a few
training steps, evaluation, records, rendering), the same under `torchrun --nproc_per_node=2` (gloo), and the
evaluation CLI on a checkpoint the driver trained. Issue 14: every step here used to hang or mislabel silently."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relabel.data.fakefull import make_fake_full

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["--set", "epochs=1", "--set", "batch_size=8", "--set", "input_size=32", "--set", "workers=0"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_fake_full(tmp_path_factory.mktemp("fakefull") / "tree")


def _env(tree: dict, runs: Path) -> dict:
    env = {**os.environ, **tree, "RELABEL_RUNS": str(runs), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return env


def _run(cmd, env, timeout=240):
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def _records(runs: Path) -> list[dict]:
    path = runs / "records" / "full.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def _cells(records) -> list[tuple]:
    return sorted((r["experiment"], r["evaluator"], r["seed"]) for r in records)


def test_make_full_scale_smoke_trains_every_table3_row_and_renders(tree, tmp_path):
    """Official import → training under `--set` → val/V2/ReaL/Shankar → records → rendered table, one process."""
    runs, out = tmp_path / "runs", tmp_path / "rendered"
    _run([sys.executable, "-m", "results.make", "table3", "--scale", "full", *SMOKE, "--out", str(out)],
         _env(tree, runs))
    recs = _records(runs)
    cells = _cells(recs)
    assert len(cells) == len(set(cells)), "a cell was recorded twice"
    rows = {"original", "label_smoothing", "label_cleaning", "relabel"}
    assert {c[0] for c in cells} == {f"pretrain/resnet50/{r}" for r in rows}
    assert {c[1] for c in cells} == {"val", "v2-top-images", "real", "shankar"}  # Table 3's columns
    for r in recs:
        train = r["config"]["train"]
        assert (train["epochs"], train["batch_size"], train["input_size"]) == (1, 8, 32)  # the --set recipe
        assert train["num_classes"] == 1000
        assert r["scale"] == "full"
    md = (out / "full" / "smoke" / "table3.md").read_text()  # a --set render: its own folder, under a banner
    assert md.startswith("> **SMOKE RUN") and "Scale: **full**" in md and not (out / "full" / "table3.md").exists()
    assert all(r["overrides"] == {"epochs": 1, "batch_size": 8, "input_size": 32, "workers": 0} for r in recs)
    # the label-cleaning row trained on Beyer et al.'s list only
    clean = {l.strip() for l in Path(tree["RELABEL_CLEAN_LIST"]).read_text().splitlines() if l.strip()}
    sizes = {r["experiment"].rsplit("/", 1)[1]: r["config"]["data"]["size"] for r in recs}
    assert sizes["label_cleaning"] == len(clean) < sizes["original"]
    # a second call has nothing to run: the records are current under the same --set recipe
    p = _run([sys.executable, "-m", "results.make", "table3", "--scale", "full", *SMOKE, "--dry-run"],
             _env(tree, runs))
    assert "0 run(s) to execute" in p.stdout
    # the checkpoint it trained goes through the evaluation CLI as a researcher would use it
    ckpt = runs / "full" / "pretrain" / "resnet50" / "relabel" / "seed0" / "model.safetensors"
    assert ckpt.is_file()
    p = _run([sys.executable, "eval_real/run.py", "--ckpt", str(ckpt), "--scale", "full",
              "--data-root", tree["IMAGENET_ROOT"], "--input-size", "32"], _env(tree, tmp_path / "cli"))
    assert "real" in p.stdout.lower()


def test_torchrun_two_ranks_writes_one_record_per_cell(tree, tmp_path):
    """`torchrun --nproc_per_node=2 -m results.make table2 --scale full` (gloo): no hang, DDP training, one
    record per cell (rank 0 writes, rank 1 does not), and the same cells as a one-process run."""
    runs = tmp_path / "runs"
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "results.make",
          "table2", "--scale", "full", *SMOKE, "--out", str(tmp_path / "rendered")], _env(tree, runs), timeout=300)
    cells = _cells(_records(runs))
    assert len(cells) == len(set(cells)) == 10  # 5 rows × (val, ReaL)
    assert (tmp_path / "rendered" / "full" / "smoke" / "table2.md").is_file()


def test_make_full_refuses_parallel_jobs_on_one_gpu(tree, tmp_path):
    p = subprocess.run([sys.executable, "-m", "results.make", "table2", "--scale", "full", "--jobs", "2",
                        "--dry-run"], cwd=REPO, env=_env(tree, tmp_path / "runs"), capture_output=True, text=True)
    assert p.returncode == 2
    assert "one after another" in p.stderr and "Traceback" not in p.stderr


def test_set_refuses_unknown_keys_and_too_large_batches(tree, tmp_path):
    env = _env(tree, tmp_path / "runs")
    p = subprocess.run([sys.executable, "-m", "results.make", "table2", "--scale", "full", "--set", "epocs=1",
                        "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "unknown --set key(s) ['epocs']" in p.stderr and "Traceback" not in p.stderr
    # the full recipe's batch of 1024 on a tiny tree: one sentence that says what to set, not a traceback
    p = subprocess.run([sys.executable, "-m", "results.make", "table2", "--scale", "full", "--set", "epochs=1",
                        "--set", "workers=0", "--set", "input_size=32"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "fewer than one batch of 1024" in p.stderr and "--set batch_size=" in p.stderr
    assert "Traceback" not in p.stderr

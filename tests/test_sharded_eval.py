"""Sharded evaluation (issue 27): under torchrun every evaluator splits its images over the ranks and gathers them
back, and what it returns — metrics, per-image outcomes, dataset and protocol, the parts of a record that come
from the evaluator — is byte for byte what one process returns, for every evaluator (ImageNet-C generated on the
fly and pre-rendered, FGSM, the background challenge's per-foreground loop included)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from relabel.dist import BatchShard
from tests.test_evaluators import make_small_world

ROOT = Path(__file__).resolve().parents[1]

# Every evaluator on one tiny model; rank 1's BatchNorm statistics are made different from rank 0's, as DDP training
# leaves them (each rank's last forward updates its own copy): the ranks must evaluate rank 0's model.
_EVAL = textwrap.dedent('''
    import json, sys
    from dataclasses import replace
    from pathlib import Path
    import timm, torch
    from relabel import evaluators as E
    from relabel.dist import init_distributed
    from tests.test_evaluators import TINY_KW

    world, rendered, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    info = init_distributed()
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, **TINY_KW)
    if info.rank == 1:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.add_(0.5)
    roots = E.DataRoots.mini(world)
    # batches of 7: 60 val images are 9 batches (8 × 7 + 4), 5 on rank 0 and 4 on rank 1
    kw = dict(input_size=32, batch_size=7, progress=False)
    res = E.evaluate_many(E.NAMES, model, roots, c_images=9, c_corruptions=("gaussian_noise", "fog"),
                          c_severities=(1, 5), **kw)
    res["imagenet-c-rendered"] = E.evaluate("imagenet-c", model, replace(roots, imagenet_c=rendered),
                                            c_corruptions=("fog", "snow"), c_severities=(1, 2), **kw)
    # one batch in all: rank 1 has none and learns the rows' shape from rank 0
    res["imagenet-a-one-batch"] = E.evaluate("imagenet-a", model, roots, **{**kw, "batch_size": 64})
    if info.rank == 0:
        out.write_text(json.dumps({n: {"metrics": r.metrics, "outcomes": r.outcomes, "dataset": r.dataset,
                                       "params": r.params} for n, r in res.items()}, sort_keys=True))
    if torch.distributed.is_initialized():  # gloo's threads still running at exit can abort the process
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
''')


def test_batch_shard_covers_every_index_once_in_the_batches_one_process_forms():
    for n, bs, world in [(60, 7, 2), (5, 7, 3), (10, 3, 4), (1, 1, 2), (8, 4, 2)]:
        shards = [BatchShard(n, bs, r, world) for r in range(world)]
        one = BatchShard(n, bs).batches
        assert one == [list(range(s, min(s + bs, n))) for s in range(0, n, bs)]
        assert sorted(b for s in shards for b in s.batches) == one  # the same batches, split
        assert sorted(i for s in shards for i in s.indices()) == list(range(n))
    with pytest.raises(ValueError, match="expected rows for 4 items, got 3"):
        BatchShard(4, 2).gather([torch.zeros(3, 1)])


@pytest.mark.slow
def test_two_gloo_ranks_return_what_one_process_returns_for_every_evaluator(tmp_path):
    world = make_small_world(tmp_path / "worlds")
    rendered = tmp_path / "imagenet-c"
    for c in ("fog", "snow"):
        for s in (1, 2):
            for cls in ("digit0", "digit3", "digit7"):
                (rendered / c / str(s) / cls).mkdir(parents=True)
                for p in sorted((world / "val" / cls).glob("*.png"))[:3]:
                    (rendered / c / str(s) / cls / p.name).write_bytes(p.read_bytes())
    script = tmp_path / "eval_all.py"
    script.write_text(_EVAL)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    outs = {}
    for name, launcher in [("one", [sys.executable]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node=2"])]:
        outs[name] = tmp_path / f"{name}.json"
        run = subprocess.run([*launcher, str(script), str(world), str(rendered), str(outs[name])], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
    one, two = outs["one"].read_text(), outs["two"].read_text()
    got = json.loads(one)
    assert set(got) == {"val", "v2-top-images", "v2-matched-frequency", "v2-threshold0.7", "real", "shankar", "fgsm",
                        "imagenet-a", "imagenet-c", "bgc", "imagenet-c-rendered", "imagenet-a-one-batch"}
    assert got["imagenet-c"]["outcomes"]["mean_acc"]["n"] == 9 and got["fgsm"]["outcomes"]["top1"]["n"] == 60
    assert got["imagenet-c-rendered"]["params"]["c_source"] == "pre-rendered"
    assert got["imagenet-a-one-batch"]["dataset"]["size"] <= 64  # one batch: rank 1 computed nothing
    if one != two:
        b = json.loads(two)
        diff = {n: [k for k in got[n] if got[n][k] != b[n][k]] for n in got if got[n] != b.get(n)}
        pytest.fail(f"2 ranks differ from 1 process in {diff}")


@pytest.mark.slow
def test_eval_cli_under_torchrun_writes_one_set_of_records_equal_to_one_process(tmp_path):
    """`torchrun --nproc_per_node=2 eval_real/run.py`: rank 0 alone prints and writes, the same metrics and
    outcomes as one process."""
    from relabel import records as R
    from tests.test_evaluators import make_tiny_checkpoint
    world, ckpt = make_small_world(tmp_path / "worlds"), make_tiny_checkpoint(tmp_path / "tiny.safetensors")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("WORLD_SIZE", None)
    recs = {}
    for name, launcher in [("one", [sys.executable]),
                           ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                    "--nproc_per_node=2"])]:
        path = tmp_path / f"{name}.jsonl"
        run = subprocess.run([*launcher, "eval_real/run.py", "--ckpt", str(ckpt), "--data-root", str(world),
                              "--suite", "val,real", "--batch-size", "7", "--no-progress", "--records", str(path)],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.count("Summary — ckpt/tiny") == 1
        recs[name] = R.read(path)
    assert [r["evaluator"] for r in recs["two"]] == ["val", "real"]
    for a, b in zip(recs["one"], recs["two"]):
        assert json.dumps([a[k] for k in ("metrics", "outcomes", "dataset", "config")], sort_keys=True) == \
            json.dumps([b[k] for k in ("metrics", "outcomes", "dataset", "config")], sort_keys=True)

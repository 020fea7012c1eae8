"""Exact resume after a kill from outside: the recipes the tables train, killed mid-run, end bit-identical.

README promises that a killed run resumes exactly, for every recipe. Each case trains in a subprocess, is sent
SIGKILL (its whole process group, loader workers included) as soon as its first checkpoint exists, is resumed,
and its final weights are compared bit for bit with an uninterrupted run's:
- the base recipe: one-hot labels, no mixing, `workers=0`;
- the ReLabel row with CutMix (Tables 5, 7: `relabel_cutmix`, AdamP), pooled from a label-map store, `workers=2`;
- the EfficientNet recipe (Table 4, App. D.2: RandAugment, Mixup, random erasing, dropout, drop path) on the
  ReLabel row, `workers=2`.
Recipes come from pretrain.config (scaled down: 32 px, batch 8, 16 steps, a checkpoint every 2 steps). The kill
lands at step 2 or so, mid-epoch: a resume that restarts the epoch or draws the model's random numbers (dropout,
drop path) differently from the uninterrupted run shows here. The helpers (`start`, `kill_when`, `finish`) also
serve the annotation job's kill test (tests/test_annotate.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# Not 16 px: there the mini ResNet's last strided 3×3 convolution (layer4.0.conv2) gets a 1×1 input, and under the
# mini recipe's bf16 autocast (amp_cpu, on CPUs that compute bf16) oneDNN's channels-last backward now and then
# returns NaN weight gradients for it (torch 2.14, AMD EPYC): two identical runs then differ, with no kill at all.
SMALL = dict(num_classes=4, input_size=32, epochs=4, batch_size=8, warmup_epochs=0.5, ckpt_every=2)
# case -> (architecture, pretraining row, loader workers); None: the trainer test's tiny one-hot ResNet
CASES = {"onehot": (None, None, 0), "relabel_cutmix": ("resnet50", "relabel_cutmix", 2),
         "efficientnet_relabel": ("efficientnet_b0", "relabel", 2)}
FIRST_CKPT_WAIT_S = 240  # bounded wait for the first checkpoint (a loaded 2-core CI machine included)


def case_config(case: str):
    """The case's TrainConfig: the recipe `pretrain.config` gives the row at mini scale, scaled down."""
    from pretrain.config import get_config, target_config
    from relabel.train import TrainConfig
    from tests.test_train import TINY
    arch, row, _ = CASES[case]
    if arch is None:
        return TrainConfig(**TINY)
    return target_config(get_config("mini"), arch, row, seed=0).replace(**SMALL)


def run_case(case: str, data: str, store: str, workdir: str) -> None:
    """Trains (or resumes) `case` in `workdir` and saves its final weights (the subprocess's body)."""
    from relabel import train as TR
    from relabel.loader import TrainSet
    from relabel.store import LabelMapStore
    from tests.test_train import _folder
    cfg = case_config(case)
    samples = _folder(Path(data), write=False)
    st = LabelMapStore.open(store) if cfg.label == "relabel" else None
    ds = TrainSet(data, samples, TR.train_transform_for(cfg), seed=cfg.seed,
                  rows=st.rows([s.path for s in samples]) if st is not None else None)
    res = TR.train(cfg, ds, workdir, store=st, workers=CASES[case][2], progress=False)
    torch.save(res.model.state_dict(), Path(workdir) / "final_weights.pt")


def start(code: str, log: Path) -> subprocess.Popen:
    """`python -c code` in its own process group (so a kill reaches its loader workers), output to `log`."""
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    with open(log, "w") as f:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    proc.log = Path(log)
    return proc


def stop(proc) -> None:
    """SIGKILL to the run's process group if it is still running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def finish(proc, timeout: float = 300) -> tuple[int, str]:
    """Waits for the run (killing it after `timeout`); its exit status and output."""
    try:
        proc.wait(timeout=timeout)
    finally:
        stop(proc)
    return proc.returncode, proc.log.read_text()


def kill_when(proc, ready: Callable[[], bool], what: str, wait_s: float = FIRST_CKPT_WAIT_S) -> None:
    """SIGKILL to `proc`'s process group as soon as `ready()`; fails if the process ends first (nothing would
    have been killed) or `ready()` stays false for `wait_s`."""
    deadline = time.monotonic() + wait_s
    try:
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (exit {proc.returncode}) before {what}, so nothing was killed:\n"
                            f"{proc.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"not {what} after {wait_s} s:\n{proc.log.read_text()}")
            time.sleep(0.005)
    finally:
        stop(proc)


def _train(case, tmp_path, workdir):
    return start(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                 f"from tests.test_resume import run_case\n"
                 f"run_case({case!r}, {str(tmp_path / 'data')!r}, {str(tmp_path / 'store')!r}, {str(workdir)!r})\n",
                 tmp_path / f"{Path(workdir).name}.log")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_killed_run_resumes_to_identical_weights(case, tmp_path):
    from tests.test_train import _folder, _store
    samples = _folder(tmp_path / "data")
    _store(tmp_path, samples)
    cfg = case_config(case)
    total = cfg.epochs * (len(samples) // cfg.batch_size)

    straight = _train(case, tmp_path, tmp_path / "a")  # the uninterrupted run, beside the killed one
    try:
        killed = _train(case, tmp_path, tmp_path / "b")
        kill_when(killed, (tmp_path / "b" / "last.pt").exists, "the first checkpoint was written")
        assert killed.returncode == -signal.SIGKILL, "the run finished before the kill landed"
        assert not (tmp_path / "b" / "final_weights.pt").exists()
        at = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"]
        assert 0 < at < total, f"the kill did not land mid-run (checkpoint at step {at} of {total})"
        rc, log = finish(_train(case, tmp_path, tmp_path / "b"))
        assert rc == 0, log
        rc, log = finish(straight)
        assert rc == 0, log
    finally:
        stop(straight)
    a = torch.load(tmp_path / "a" / "final_weights.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "final_weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"resumed from step {at} of {total}, the weights differ from an uninterrupted run's in " \
                       f"{len(differ)} tensors, first {differ[:3]}"
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == total

"""Two mmengine hooks for Table 9's runs: training wall time summed over resumptions, and one progress line.

Registered in mmdet's HOOKS when `transfer.detection.mmdet_config` builds a config that names them.
"""
from __future__ import annotations

import sys
import time

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class TrainWallTimeHook(Hook):
    """Training wall time summed over resumptions: kept in each checkpoint's meta and read back on resume, so
    a record's `wall_time_s` is the whole run's, not only the part after the last restart (as relabel.train)."""
    priority = "VERY_LOW"
    META_KEY = "transfer_train_wall_s"

    def __init__(self):
        self.before, self.t0, self.total = 0.0, None, 0.0

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        self.before = float(checkpoint.get("meta", {}).get(self.META_KEY, 0.0))

    def before_train(self, runner) -> None:
        self.t0 = time.time()

    def elapsed(self) -> float:
        return self.before + (time.time() - self.t0 if self.t0 is not None else 0.0)

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        checkpoint.setdefault("meta", {})[self.META_KEY] = self.elapsed()

    def after_train(self, runner) -> None:
        self.total = self.elapsed()


@HOOKS.register_module()
class TransferProgressHook(Hook):
    """One line every `interval` iterations (loss, time, ETA) on stderr, whatever mmengine's log level is (and
    while run_detection sends third-party prints, such as pycocotools', to a file)."""
    priority = "LOW"

    def __init__(self, interval: int = 50, label: str = ""):
        self.interval, self.label, self.t0, self.start_iter = interval, label, None, 0

    def before_train(self, runner) -> None:
        self.t0, self.start_iter = time.time(), runner.iter
        if runner.iter:
            print(f"  {self.label}: resuming at iteration {runner.iter}/{runner.max_iters}", file=sys.stderr,
                  flush=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        it = runner.iter + 1
        if self.interval <= 0 or (it % self.interval and it != runner.max_iters):
            return
        spent = time.time() - self.t0
        eta = spent / max(1, it - self.start_iter) * (runner.max_iters - it)
        loss = outputs.get("loss", float("nan")) if outputs else float("nan")
        loss = loss.item() if hasattr(loss, "item") else float(loss)
        print(f"  {self.label}: iteration {it}/{runner.max_iters}  loss {loss:.3f}  {spent:.0f} s, "
              f"~{eta:.0f} s left", file=sys.stderr, flush=True)

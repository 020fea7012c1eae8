"""`make annotator`: train the default mini annotator here and publish it for every mini run (issue 15).

The paper's annotator is a downloaded model (EfficientNet-L2-NS); the mini one is trained once and committed like
one: `pretrain/published/annotator-mini-default.safetensors` with a JSON beside it holding the recipe hash, the
sha256, the machine it was trained on and its accuracy as a plain classifier (val, ReaL) at its input size. Mini
runs take the file while its recipe hash equals the code's (`pretrain.artifacts.published_annotator`);
tests/test_published_annotator.py fails when they differ, so the file cannot go stale silently.

    python -m pretrain.publish_annotator            # train (or reuse a current local one), evaluate, publish

A local annotator is reused only if no mini run has taken the published file since it was trained (taking it sets
the local one aside); otherwise this trains anew.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time

import torch

MAX_BYTES = 25 * 2**20  # the weights committed to git stay small


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pretrain.publish_annotator", description=__doc__.split("\n\n")[0])
    ap.parse_args(argv)
    os.environ["RELABEL_PUBLISHED_ANNOTATOR"] = "0"  # train here, never copy the file being replaced
    from pretrain import artifacts as A
    from pretrain.config import get_config
    from relabel import evaluators as E
    from relabel.checkpoint import load_model, read_meta
    from relabel.records import config_hash, file_sha256, git_state, write_json_atomic
    from relabel.hardware import cpu_bf16_enabled, cpu_class
    sys.stdout.reconfigure(line_buffering=True)
    cfg = get_config("mini")
    a = cfg.annotator
    t0 = time.time()
    ckpt = A.annotator_checkpoint(cfg, "default")
    model = load_model(ckpt)
    roots, cache, acc = A.data_roots(cfg), {}, {}
    for name in ("val", "real"):
        res = E.evaluate(name, model, roots, input_size=a.input_size, crop_ratio=1.0, progress=True, cache=cache)
        acc[name] = {k: round(float(v), 4) for k, v in res.metrics.items() if isinstance(v, (int, float))}
    weights, meta = A.published_paths("mini", "default")
    size = ckpt.stat().st_size
    if size > MAX_BYTES:
        print(f"error: the annotator's weights take {size / 2**20:.1f} MiB, over the {MAX_BYTES // 2**20} MiB a "
              "committed file may take; make the model smaller", file=sys.stderr)
        return 1
    weights.parent.mkdir(parents=True, exist_ok=True)
    extra = read_meta(ckpt).get("extra", {})
    info = {"recipe_hash": config_hash(a.recipe()), "recipe": a.recipe(), "world": A.mini_world_name(),
            "input_size": a.input_size, "read_kwargs": a.read_kwargs,
            "sha256": file_sha256(ckpt), "bytes": size,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "accuracy": acc, "evaluated_at": {"input_size": a.input_size, "crop_ratio": 1.0},
            "trained": {"wall_s": round(float(extra.get("train_wall_s", 0.0)), 1), "cpu_class": cpu_class(),
                        "bf16": cpu_bf16_enabled(), "torch": torch.__version__, "machine": platform.machine(),
                        "git": git_state()}}
    # both files swapped in one after the other (a mini run starting between the two sees a sha256 mismatch
    # and says so; rerun it)
    tmp = weights.with_suffix(".tmp")
    shutil.copyfile(ckpt, tmp)
    write_json_atomic(meta.with_suffix(".tmp.json"), info)
    os.replace(tmp, weights)
    os.replace(meta.with_suffix(".tmp.json"), meta)
    print(f"published {weights} ({size / 2**20:.2f} MiB, sha256 {info['sha256'][:12]}) and {meta.name}: "
          f"val top-1 {acc['val'].get('top1', float('nan')):.1f}, "
          f"ReaL top-1 {acc['real'].get('top1', float('nan')):.1f} at {a.input_size} px ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

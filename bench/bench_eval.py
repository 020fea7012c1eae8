"""Benchmark of evaluation on this CPU: seconds per evaluator for one mini target (issue 25's plan amendment). Not a
timed test: run it by hand and keep the JSON it writes.

    python -m bench.bench_eval --out runs/bench/bench_eval.json          # every evaluator, ResNet-50, one thread
    python -m bench.bench_eval --arch efficientnet_b0 --evaluators val fgsm

The model is the architecture's mini target with random weights (seeded), so the timing reads no trained model
and no outcome: evaluation time does not depend on the weights. Each evaluator runs once on the mini world's test
sets (built on first use), one thread by default (as `make` gives each run), through the same call the pretraining
runs make (`relabel.evaluators.evaluate`, val logits shared by ReaL and Shankar as there). The JSON holds seconds
per evaluator, the images each read, the CPU class, the load average before and after, and the commit.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from relabel.records import write_json_atomic


def main(argv=None) -> int:
    from relabel import evaluators as E
    ap = argparse.ArgumentParser(prog="python -m bench.bench_eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet50", help="a Table 4 architecture's mini target (default resnet50)")
    ap.add_argument("--evaluators", nargs="+", default=list(E.NAMES), metavar="NAME",
                    help=f"evaluators to time (default: all: {', '.join(E.NAMES)})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as make gives each run)")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args(argv)
    from pretrain import artifacts as A
    from pretrain.config import ARCHS, get_config, target_config
    from relabel.records import git_state
    from relabel.hardware import cpu_class
    from relabel.train import create_model
    if a.arch not in ARCHS:
        ap.error(f"unknown architecture {a.arch}; known: {', '.join(ARCHS)}")
    unknown = [n for n in a.evaluators if n not in E.NAMES]
    if unknown:
        ap.error(f"unknown evaluator {', '.join(unknown)}; known: {', '.join(E.NAMES)}")
    torch.set_num_threads(a.threads)
    cfg = get_config("mini")
    tcfg = target_config(cfg, a.arch, "original", 0)
    torch.manual_seed(0)
    model = create_model(tcfg).eval()
    roots = A.data_roots(cfg)
    load_before = os.getloadavg()
    print(f"CPU: {platform.processor() or platform.machine()}; class: {cpu_class()}; threads: {a.threads}; "
          f"load average {load_before[0]:.2f}", flush=True)
    cache, seconds, images = {}, {}, {}
    for name in a.evaluators:
        t0 = time.perf_counter()
        res = E.evaluate(name, model, roots, input_size=cfg.eval_input, crop_ratio=cfg.eval_crop_ratio,
                         progress=False, cache=cache)
        seconds[name] = round(time.perf_counter() - t0, 2)
        images[name] = (res.dataset or {}).get("size")
        print(f"{name:<22} {seconds[name]:8.1f} s  ({images[name]} images)", flush=True)
    out = {"arch": a.arch, "model": tcfg.model, "input_size": cfg.eval_input, "threads": a.threads,
           "cpu_class": cpu_class(), "host": platform.node(), "torch": torch.__version__,
           "load_before": load_before[0], "load_after": os.getloadavg()[0], "commit": git_state().get("sha"), "dirty": git_state().get("dirty"),
           "date": time.strftime("%Y-%m-%d"),
           "seconds": seconds, "images": images, "total_s": round(sum(seconds.values()), 1)}
    print(f"total {out['total_s']:.0f} s; load average {out['load_after']:.2f}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(a.out, out)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of a mini training step on this CPU: ms/step of the mini ResNet-50 target and of the mini annotator,
with the CPU class they depend on (issue 17). Not a timed test: run it by hand and keep the JSON it writes.

    python -m bench.bench_step --out runs/bench/bench_step.json            # this CPU as it is
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m bench.bench_step   # an AVX2 laptop, on any x86 CPU
    ONEDNN_MAX_CPU_ISA=AVX512_CORE ATEN_CPU_CAPABILITY=avx512 python -m bench.bench_step   # AVX-512, no bf16
    python -m bench.bench_step --profile     # also torch.profiler's top ops of each model's step (synthetic batch)
    python -m bench.bench_step --models resnet50 efficientnet_b0 rexnet_100   # any Table 4 architecture's target

Each model trains through the real trainer (`relabel.train.train`: data loading, augmentation, forward, backward,
optimizer) on the mini world's train split (built on first use) with its mini recipe, one thread by default (as
`make` gives each run), for `--steps` steps after `--warmup` steps; ms/step is the wall time of those steps. Beside
it: the model's own step (forward, backward and optimizer on a synthetic batch; the rest of the trainer's step is
data loading, augmentation and labels) and its GFLOP (forward + backward, torch's flop counter), so ms/step can be
compared across CPUs and architectures.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from relabel.records import write_json_atomic


def _steps_ms(tcfg, ds, steps: int, warmup: int) -> float:
    """Wall ms per training step: a run of warmup+steps steps minus a run of warmup steps (both fresh, so start-up,
    model creation and the first slow steps cancel), divided by steps."""
    from relabel.train import train
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, sub in ((warmup, "a"), (warmup + steps, "b")):
            t0 = time.perf_counter()
            train(tcfg.replace(max_steps=n, ckpt_every=10**9), ds, Path(tmp) / sub, progress=False)
            times.append(time.perf_counter() - t0)
    return 1000.0 * (times[1] - times[0]) / steps


def _synthetic_step(tcfg):
    """The model's own training step on a synthetic batch, as relabel.train.train builds it (channels-last, the
    recipe's optimizer, bf16 autocast where the recipe and CPU use it), and the model."""
    from timm.optim import create_optimizer_v2
    from relabel.hardware import cpu_bf16_enabled
    from relabel.train import create_model
    model = create_model(tcfg).to(memory_format=torch.channels_last).train()
    opt = create_optimizer_v2(model, tcfg.optimizer, lr=tcfg.lr, weight_decay=tcfg.weight_decay,
                              momentum=tcfg.momentum)
    x = torch.randn(tcfg.batch_size, 3, tcfg.input_size, tcfg.input_size).to(memory_format=torch.channels_last)
    y = torch.randint(0, tcfg.num_classes, (tcfg.batch_size,))
    amp = tcfg.amp_cpu and cpu_bf16_enabled()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, model, x


def _model_ms(tcfg, steps: int, warmup: int) -> tuple[float, float]:
    """(ms per synthetic model step, GFLOP of one forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode
    step, model, x = _synthetic_step(tcfg)
    with FlopCounterMode(display=False) as fc:
        model(x).float().sum().backward()
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return 1000.0 * (time.perf_counter() - t0) / steps, fc.get_total_flops() / 1e9


def _profile(tcfg, steps: int = 5, rows: int = 12) -> str:
    """torch.profiler's table (self CPU time) of the model's forward, backward and optimizer step on a synthetic batch
    (no data loading, no label targets): where a step's time goes on this CPU, op by op."""
    from torch.profiler import ProfilerActivity, profile
    step, _, _ = _synthetic_step(tcfg)
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=44)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="timed steps per model (default 60)")
    ap.add_argument("--warmup", type=int, default=5, help="steps before timing (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as make gives each run)")
    ap.add_argument("--models", nargs="+", default=["resnet50", "annotator"], metavar="NAME",
                    help="what to time: Table 4 architectures (their mini target on the original labels) and/or "
                         "'annotator' (default: resnet50 annotator)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's top ops (self CPU time) of each model's forward+backward+step")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from pretrain import artifacts as A
    from pretrain.config import ARCHS, get_config, target_config
    from relabel.configs import ConfigError
    from relabel.loader import TrainSet
    from relabel.hardware import cpu_bf16_enabled, cpu_class
    from relabel.train import train_transform_for
    unknown = [m for m in a.models if m != "annotator" and m not in ARCHS]
    if unknown:
        ap.error(f"unknown model {', '.join(unknown)}; known: {', '.join([*ARCHS, 'annotator'])}")
    try:
        bf16 = cpu_bf16_enabled()
    except ConfigError as e:
        ap.error(str(e))
    cfg = get_config("mini")
    root, samples = A.train_samples(cfg)
    models = {("annotator (default)" if m == "annotator" else f"target {m} (original labels)"):
              (cfg.annotator.train if m == "annotator" else target_config(cfg, m, "original", 0)) for m in a.models}
    cls = cpu_class()
    print(f"CPU: {platform.processor() or platform.machine()}; class: {cls}; torch ISA: "
          f"{torch.backends.cpu.get_cpu_capability()}; bf16 autocast for amp_cpu recipes: "
          f"{'on' if bf16 else 'off'}; threads: {a.threads}", flush=True)
    out = {"cpu_class": cls, "isa": torch.backends.cpu.get_cpu_capability(), "bf16": bf16,
           "threads": a.threads, "steps": a.steps, "torch": torch.__version__, "host": platform.node(),
           "env": {k: os.environ.get(k) for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "RELABEL_CPU_BF16")},
           "models": {}}
    for name, tcfg in models.items():
        ds = TrainSet(root, samples, train_transform_for(tcfg), seed=0, cache=cfg.cache_images)
        ms = _steps_ms(tcfg, ds, a.steps, a.warmup)
        model_ms, gflop = _model_ms(tcfg, max(10, a.steps // 3), a.warmup)
        out["models"][name] = {"ms_per_step": ms, "model_ms_per_step": model_ms, "gflop_fwd_bwd": gflop,
                               "batch_size": tcfg.batch_size, "input_size": tcfg.input_size,
                               "model": tcfg.model, "model_kwargs": tcfg.model_kwargs}
        print(f"{name:<40} {ms:7.1f} ms/step  (batch {tcfg.batch_size}, {tcfg.input_size} px; the model's own "
              f"step {model_ms:.1f} ms, {gflop:.2f} GFLOP fwd+bwd)", flush=True)
        if a.profile:
            print(_profile(tcfg), flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(a.out, out)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

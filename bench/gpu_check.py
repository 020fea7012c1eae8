"""One prepared GPU check (issue 27): does this project keep one GPU busy at full scale? One command, one JSON.

    python -m bench.gpu_check                         # one GPU, ≤ 8 min: writes runs/bench/gpu_check.json
    python -m bench.gpu_check --cpu --tiny            # the same code on a CPU in < 60 s (tests/test_gpu_check.py)

Stages, each printed as one line with its time and written into the JSON (atomically) as soon as it ends:

1. `data`: ImageNet-like JPEGs (bench/bench_loader.py's generator: textured, ImageNet's size spread) in 100 class
   folders under the output's folder, with a float32 top-5 15 × 15 label-map store for them.
2. Training throughput of one model (ResNet-50 by default), bf16 autocast on the GPU, channels-last, SGD, the
   trainer's step (soft cross-entropy, a finite-loss check each step), in one shared timing loop fed by:
   `ceiling` (a fixed batch already on the device: the compute ceiling), `ours_relabel` and `ours_original` (this
   project's TrainSet + 8-bit collate, LabelPooling in the workers for ReLabel, `finish` on the device after a
   pinned copy: what `relabel.train.train` does on a GPU) and `timm_loader` (timm's `create_loader`, prefetcher on,
   the same recipe). Images/s over the timed steps after a warm-up, and the fraction of that time spent waiting
   for the next batch. Then `trainer`: `relabel.train.train` itself, ReLabel, for a few hundred steps (start-up
   included), the images/s and `data_wait_fraction` a record would carry.
3. `annotation`: `relabel.annotate.annotate` with the paper's annotator architecture (EfficientNet-L2, timm
   `tf_efficientnet_l2`, random weights) at 475 px, whole images, top-5 into a store: images/s end to end, and the
   annotator's forward alone on device-resident inputs.
4. `evaluation`: the `val` evaluator (Resize 256 + CenterCrop 224) over the JPEG tree as a val-like folder.

`--max-minutes` (default 8) is a budget: a stage that would start too late is skipped and says so, and the loop
stages shorten themselves to fit. A failing stage records its error and the check goes on; the exit status is 1
if any stage failed. Goals (issue 27, one H100): ReLabel ≥ 95% of the ceiling and ≥ 1.0× timm's loader in the
same loop; annotation ≥ 150 images/s at 475 px.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import math
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

import torch

from relabel.records import git_state, runs_root, write_json_atomic

GOALS = {"relabel_vs_ceiling": 0.95, "relabel_vs_timm_loader": 1.0, "annotation_images_s": 150.0}
NUM_CLASSES = 1000
# (images, batch, warm-up steps, timed seconds cap, timed steps cap, trainer steps, annotated images, input px,
#  annotator px, annotator batch): full on one GPU, tiny on a CPU in CI
MODES = {
    "full": dict(images=5000, batch=256, warmup=15, seconds=25.0, steps=400, trainer_steps=200, annotate=2048,
                 input_size=224, annotator_size=475, annotator_batch=32, arch="resnet50",
                 annotator_arch="tf_efficientnet_l2"),
    "tiny": dict(images=64, batch=8, warmup=1, seconds=5.0, steps=3, trainer_steps=3, annotate=16,
                 input_size=64, annotator_size=64, annotator_batch=8, arch="resnet10t",
                 annotator_arch="test_efficientnet"),
}
# the least time (s) a stage needs to be worth starting on a GPU run (a tiny run needs far less)
MIN_STAGE_S = {"ceiling": 20, "ours_relabel": 30, "ours_original": 30, "timm_loader": 30, "trainer": 45,
               "annotation": 60, "evaluation": 20}


class Check:
    """The JSON under construction: each stage's result written (atomically) the moment it ends."""

    def __init__(self, out: Path, budget_s: float, tiny: bool, info: dict):
        self.out, self.budget_s, self.tiny, self.t0 = out, budget_s, tiny, time.perf_counter()
        self.doc = {**info, "stages": {}, "ratios": {}, "goals": GOALS, "complete": False}
        self.failed = False
        self.write()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def write(self) -> None:
        self.doc["elapsed_s"] = round(self.elapsed(), 1)
        write_json_atomic(self.out, self.doc)

    @contextlib.contextmanager
    def stage(self, name: str, needs: tuple = ()):
        """Runs the body unless the budget is spent or a stage it needs did not finish; records its result (the
        dict yielded), its time, or its error, and prints one line."""
        result: dict = {}
        missing = [n for n in needs if "error" in self.doc["stages"].get(n, {"error": 1})
                   or self.doc["stages"][n].get("skipped")]
        need_s = 1.0 if self.tiny else MIN_STAGE_S.get(name, 10)
        if missing or self.left() < need_s:
            why = f"needs {', '.join(missing)}" if missing else f"budget: {self.left():.0f} s left, needs ~{need_s} s"
            self.doc["stages"][name] = {"skipped": why}
            print(f"[{self.elapsed():6.1f} s] {name:<14} skipped ({why})", flush=True)
            self.write()
            yield None
            return
        t = time.perf_counter()
        self.doc["running"] = name  # a run killed mid-stage leaves the JSON saying where
        self.write()
        try:
            yield result
            result["seconds"] = round(time.perf_counter() - t, 2)
            self.doc["stages"][name] = result
            shown = {k: v for k, v in result.items() if isinstance(v, (int, float)) and k != "seconds"}
            print(f"[{self.elapsed():6.1f} s] {name:<14} {result['seconds']:6.1f} s  "
                  + "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()),
                  flush=True)
        except Exception as e:  # noqa: BLE001 — a blind run must record every stage it can
            self.failed = True
            self.doc["stages"][name] = {"error": f"{type(e).__name__}: {e}",
                                        "traceback": traceback.format_exc()[-3000:],
                                        "seconds": round(time.perf_counter() - t, 2)}
            print(f"[{self.elapsed():6.1f} s] {name:<14} FAILED: {type(e).__name__}: {e}", flush=True)
        self.doc.pop("running", None)
        self.write()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_loop(model, optimizer, batches, to_device, device, warmup: int, steps: int, seconds: float) -> dict:
    """Images/s and data-wait fraction of the trainer's step fed by `batches`: `warmup` steps untimed, then up to
    `steps` steps or `seconds`, whichever ends first (the device synchronised at both ends)."""
    from relabel.train import soft_cross_entropy
    model.train()
    amp = device.type == "cuda"
    it = iter(batches)
    images = wait = 0.0
    t0 = None
    done = 0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0, images, wait = time.perf_counter(), 0, 0.0
        tw = time.perf_counter()
        batch = next(it)
        wait += time.perf_counter() - tw
        x, target = to_device(batch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = soft_cross_entropy(logits, target)
        if not torch.isfinite(loss):  # the trainer's check: one device sync a step, as in training
            raise FloatingPointError(f"loss is {loss.item()} at step {i}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if t0 is not None:
            images += x.shape[0]
            done += 1
            if time.perf_counter() - t0 > seconds:
                break
    _sync(device)
    wall = time.perf_counter() - t0
    return {"images_s": images / wall, "data_wait_fraction": wait / wall, "timed_steps": done,
            "batch": int(x.shape[0])}


class _Repeated(torch.utils.data.Dataset):
    """`ds` repeated `times` over, so one DataLoader pass (one worker start) covers the whole timed run."""

    def __init__(self, ds, times: int):
        self.ds, self.times = ds, times

    def __len__(self) -> int:
        return len(self.ds) * self.times

    def __getitem__(self, i: int):
        return self.ds[i % len(self.ds)]


def _timm_dataset(root: Path, times: int):
    from timm.data import ImageDataset

    class RepeatedImageDataset(ImageDataset):  # create_loader sets .transform on it, as on any ImageDataset
        def __len__(self):
            return super().__len__() * times

        def __getitem__(self, i):
            return super().__getitem__(i % super().__len__())

    return RepeatedImageDataset(str(root))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Stages: data, ceiling, ours_relabel, ours_original, timm_loader, trainer, "
                                        "annotation, evaluation (see the module docstring).")
    ap.add_argument("--out", help="the JSON (default: runs/bench/gpu_check.json; $RELABEL_RUNS moves runs/); the "
                                  "generated images live beside it, in gpu_check_data/")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (no GPU needed; with --tiny in CI)")
    ap.add_argument("--tiny", action="store_true", help="64 small images, a few steps, small models: seconds")
    ap.add_argument("--max-minutes", type=float, default=8.0, help="time budget; later stages are skipped (8)")
    ap.add_argument("--arch", help="timm model to train (default resnet50; --tiny: resnet10t)")
    ap.add_argument("--annotator-arch", help="timm annotator architecture (default tf_efficientnet_l2, the paper's "
                                             "EfficientNet-L2; --tiny: test_efficientnet)")
    ap.add_argument("--batch-size", type=int, help="training and evaluation batch (default 256; --tiny 8)")
    ap.add_argument("--workers", type=int, help="DataLoader workers (default: cores - 2, at least 1)")
    ap.add_argument("--images", type=int, help="JPEGs to generate (default 5000; --tiny 64)")
    a = ap.parse_args(argv)
    mode = dict(MODES["tiny" if a.tiny else "full"])
    for key, value in (("arch", a.arch), ("annotator_arch", a.annotator_arch), ("batch", a.batch_size),
                       ("images", a.images)):
        if value is not None:
            mode[key] = value
    if not a.cpu and not torch.cuda.is_available():
        print("error: no CUDA device is visible; run on a GPU machine, or pass --cpu (with --tiny for a quick run).",
              file=sys.stderr)
        return 2
    device = torch.device("cpu") if a.cpu else torch.device("cuda", torch.cuda.current_device())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = a.workers if a.workers is not None else (1 if a.tiny else max(1, cores - 2))
    out = Path(a.out) if a.out else runs_root() / "bench" / "gpu_check.json"
    data = out.parent / "gpu_check_data"
    import timm
    git = git_state()
    info = {"what": "issue 27's GPU check: training images/s (ceiling, ours ReLabel/original, timm's loader, the "
                    "trainer), annotation and evaluation images/s", "mode": "tiny" if a.tiny else "full",
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
            "cores": cores, "workers": workers, "torch": torch.__version__, "timm": timm.__version__,
            "cuda": torch.version.cuda, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "commit": git.get("sha"), "dirty": git.get("dirty"), "date": datetime.date.today().isoformat(),
            "host": platform.node(), "settings": {**mode, "max_minutes": a.max_minutes}}
    check = Check(out, 60.0 * a.max_minutes, a.tiny, info)
    print(f"gpu_check ({info['mode']}) on {info['device']}, {cores} cores, {workers} workers -> {out}", flush=True)
    run_stages(check, mode, device, workers, data)
    ratios = check.doc["ratios"]
    st = check.doc["stages"]
    rate = {k: st.get(k, {}).get("images_s") for k in ("ceiling", "ours_relabel", "ours_original", "timm_loader")}
    if rate["ours_relabel"] and rate["ceiling"]:
        ratios["relabel_vs_ceiling"] = rate["ours_relabel"] / rate["ceiling"]
    if rate["ours_relabel"] and rate["timm_loader"]:
        ratios["relabel_vs_timm_loader"] = rate["ours_relabel"] / rate["timm_loader"]
    if rate["ours_original"] and rate["ceiling"]:
        ratios["original_vs_ceiling"] = rate["ours_original"] / rate["ceiling"]
    ann = st.get("annotation", {}).get("images_s")
    met = {k: v >= GOALS[k] for k, v in ratios.items() if k in GOALS}
    if ann is not None:
        met["annotation_images_s"] = ann >= GOALS["annotation_images_s"]
    check.doc["goals_met"] = met
    check.doc["complete"] = all("seconds" in s and "error" not in s for s in st.values())
    check.write()
    print(f"[{check.elapsed():6.1f} s] done: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
          + f"; goals met: {met}; wrote {out}", flush=True)
    return 1 if check.failed else 0


def run_stages(check: Check, mode: dict, device: torch.device, workers: int, data: Path) -> None:
    from bench.bench_loader import build_images, build_store
    from relabel.loader import Sample, TrainSet
    from relabel.train import TrainConfig, create_model, onehot_target, train_transform_for
    from timm.optim import create_optimizer_v2
    cuda = device.type == "cuda"
    size, batch = mode["input_size"], mode["batch"]
    state: dict = {}

    with check.stage("data") as r:
        if r is not None:
            root = data / f"images-{mode['images']}{'-small' if check.doc['mode'] == 'tiny' else ''}"
            paths = build_images(root / "images", mode["images"], small=check.doc["mode"] == "tiny",
                                 processes=max(1, min(16, check.doc["cores"])))
            store = build_store(root, paths)
            state.update(root=root / "images", paths=paths, store=store)
            r.update(images=len(paths), mean_kb=sum((root / "images" / p).stat().st_size for p in paths)
                     / len(paths) / 1e3, folder=str(root))

    cfg = TrainConfig(model=mode["arch"], num_classes=NUM_CLASSES, input_size=size, label="relabel",
                      batch_size=batch, lr=1e-3, warmup_epochs=0.0, epochs=1, max_steps=mode["trainer_steps"],
                      ckpt_every=10**9)  # a throughput run: a small lr keeps random data finite
    model = optimizer = None
    steps_needed = mode["warmup"] + mode["steps"]

    def fresh_model():
        nonlocal model, optimizer
        if model is None:
            torch.manual_seed(0)
            model = create_model(cfg).to(device).to(memory_format=torch.channels_last)
            optimizer = create_optimizer_v2(model, cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                            momentum=cfg.momentum)
        return model, optimizer

    def loop(r, batches, to_device):
        m, opt = fresh_model()
        seconds = min(mode["seconds"], max(5.0, check.left() - 150.0)) if not check.tiny else mode["seconds"]
        r.update(timed_loop(m, opt, batches, to_device, device, mode["warmup"], mode["steps"], seconds))

    with check.stage("ceiling") as r:
        if r is not None:
            x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
            y = onehot_target(torch.randint(NUM_CLASSES, (batch,), device=device), NUM_CLASSES)
            loop(r, itertools.repeat((x, y)), lambda b: b)

    def ours(label: str):
        from relabel.loader import collate_train
        from relabel.train import LabelPoolingCollate
        transform = train_transform_for(cfg)
        paths = state["paths"]
        times = math.ceil(steps_needed * batch / len(paths)) + 1
        samples = [Sample(p, i % 100) for i, p in enumerate(paths)]
        ds = TrainSet(state["root"], samples, transform, seed=0, rows=state["store"].rows(paths))
        if label == "relabel":
            collate = LabelPoolingCollate(state["store"], NUM_CLASSES, cfg.relabel_variant, transform=transform,
                                          finish=False)
        else:
            import functools
            collate = functools.partial(collate_train, transform=transform, finish=False)
        loader = torch.utils.data.DataLoader(_Repeated(ds, times), batch_size=batch, shuffle=True,
                                             num_workers=workers, pin_memory=cuda, drop_last=True,
                                             collate_fn=collate, timeout=300 if workers else 0)  # no silent hang

        def to_device(b):  # relabel.train.train's handling of a Pending batch, finished on the device
            x, _boxes, _flips, labels, _rows, *pooled = b
            x = transform.finish_batch(x._replace(pixels=x.pixels.to(device, non_blocking=True)))
            x = x.contiguous(memory_format=torch.channels_last)
            target = pooled[0].to(device, non_blocking=True) if pooled else \
                onehot_target(labels.to(device, non_blocking=True), NUM_CLASSES)
            return x, target
        return loader, to_device

    for label in ("relabel", "original"):
        with check.stage(f"ours_{label}", needs=("data",)) as r:
            if r is not None:
                loader, to_device = ours(label)
                loop(r, loader, to_device)
                del loader

    with check.stage("timm_loader", needs=("data",)) as r:
        if r is not None:
            from relabel.loader import IMAGENET_MEAN, IMAGENET_STD
            from timm.data import create_loader
            times = math.ceil(steps_needed * batch / len(state["paths"])) + 1
            loader = create_loader(_timm_dataset(state["root"], times), (3, size, size), batch, is_training=True,
                                   scale=cfg.crop_scale, hflip=cfg.hflip, color_jitter=cfg.color_jitter,
                                   interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                   num_workers=workers, use_prefetcher=True, pin_memory=cuda, device=device)
            loop(r, loader, lambda b: (b[0].contiguous(memory_format=torch.channels_last),
                                       onehot_target(b[1].to(device), NUM_CLASSES)))
            del loader

    with check.stage("trainer", needs=("data",)) as r:
        if r is not None:
            from relabel.train import train
            paths = state["paths"]
            times = math.ceil(mode["trainer_steps"] * batch / len(paths)) + 1
            samples = [Sample(p, i % 100) for i, p in enumerate(paths)] * times
            ds = TrainSet(state["root"], samples, train_transform_for(cfg), seed=0,
                          rows=list(state["store"].rows(paths)) * times)
            workdir = data / "trainer_run"
            shutil.rmtree(workdir, ignore_errors=True)
            res = train(cfg, ds, workdir, store=state["store"], workers=workers, device=device, progress=False)
            shutil.rmtree(workdir, ignore_errors=True)
            r.update(images_s=res.images_seen / res.wall_s, data_wait_fraction=res.data_wait_fraction,
                     steps=res.steps, wall_s=res.wall_s, note="relabel.train.train end to end, ReLabel, start-up "
                                                             "(workers, first steps) included")

    global_model = model
    with check.stage("annotation", needs=("data",)) as r:
        if r is not None:
            import timm
            from relabel.annotate import annotate
            from relabel.fully_conv import label_map
            with torch.device(device):  # random weights, initialised on the device (L2: 480 M parameters)
                ann = timm.create_model(mode["annotator_arch"], num_classes=NUM_CLASSES).eval()
            s, ab = mode["annotator_size"], mode["annotator_batch"]
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                x = torch.randn(ab, 3, s, s, device=device)
                label_map(ann, x, check=True)  # warm-up
                _sync(device)
                t, n = time.perf_counter(), 0
                while n < (2 if check.tiny else 8) * ab:
                    label_map(ann, x, check=False)
                    n += ab
                _sync(device)
                forward = n / (time.perf_counter() - t)
            store_path = data / "annotation_store"
            shutil.rmtree(store_path, ignore_errors=True)
            got = annotate(ann, state["root"], state["paths"][:mode["annotate"]], store_path, k=5, input_size=s,
                           annotator=mode["annotator_arch"], batch_size=ab, workers=workers, device=device,
                           progress=False, with_sizes=False)
            shutil.rmtree(store_path, ignore_errors=True)
            r.update(images_s=got["images_per_s"], forward_images_s=forward, images=got["images"],
                     arch=mode["annotator_arch"], input_size=s,
                     parameters_m=sum(p.numel() for p in ann.parameters()) / 1e6)
            del ann
            if cuda:
                torch.cuda.empty_cache()

    with check.stage("evaluation", needs=("data",)) as r:
        if r is not None:
            from relabel import evaluators as E
            m = global_model if global_model is not None else fresh_model()[0]
            folders = sorted({p.split("/")[0] for p in state["paths"]})
            classes = tuple(folders) + tuple(f"unused{i:04d}" for i in range(NUM_CLASSES - len(folders)))
            roots = E.DataRoots(scale="full", name="gpu_check", classes=classes, val=state["root"])
            eval_size = size if check.tiny else 224
            t = time.perf_counter()
            res = E.evaluate("val", m, roots, input_size=eval_size, crop_ratio=0.875, device=device,
                             batch_size=batch, workers=workers, progress=False)
            secs = time.perf_counter() - t
            r.update(images_s=res.dataset["size"] / secs, images=res.dataset["size"], input_size=eval_size,
                     note="the val evaluator, worker start-up included")


if __name__ == "__main__":
    raise SystemExit(main())

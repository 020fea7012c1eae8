"""Benchmark of the training input pipeline on ImageNet-like JPEGs: images/s per core, this project against timm.

    python -m bench.bench_loader                      # full: 3000 images, writes bench/measured/<date>_bench_loader.json
    python -m bench.bench_loader --quick --out /tmp/l.json   # 64 small images, seconds (tests/test_bench_loader.py)
    python -m bench.bench_loader --pin                # each process on its own core (a shared, loaded machine)
    python -m bench.bench_loader --pin --repeat 3     # each figure the best of 3 passes, its median beside it
    python -m bench.bench_loader --pin --interleave --repeat 2   # paired: pipelines take turns; ratios with intervals

The images are generated once (deterministically, cached under $RELABEL_RUNS/bench/): textured content (multi-octave
noise with hard-edged shapes; JPEG decode cost follows content, so flat colour would flatter every decoder), JPEG
quality 92, ImageNet train's size spread (mostly 500 × 375 / 375 × 500, ~110 KB), in 100 class folders, with a
float32 top-5 label-map store of 15 × 15 random maps (relabel.store, the shape of the official release). Timed,
the Table 3 full-scale recipe (RandomResizedCrop 224, flip 0.5, colour jitter 0.4, normalise), batches of 64:

* in-process, one thread on one core: PIL decode alone; this project's decode (relabel.loader.load_rgb: simplejpeg
  where it gives PIL's pixels); timm's `create_transform` (on PIL's decode, as timm's dataset loads); this project's
  pipeline with the original labels and with ReLabel (store read + LabelPooling), each as `legacy` (the code before
  issue 27: the whole batch's float jitter + normalisation in the collate) and as now: `device` (the 8-bit batch
  with its jitter draws; `finish` runs on the training device, so a GPU run's CPU does not pay it) and `loader`
  (a CPU-only run: the cache-sized `finish` in the collate);
* through a torch DataLoader at 1..N workers: timm's `create_loader` (normalising in the workers; and with its
  prefetcher's 8-bit collate, normalising in the consuming process) and this project's pipelines.

A DataLoader rate is the whole pass (worker start-up included) over the images; per worker = rate / workers. Beside
each wall-clock rate, images per CPU-second (this process and its joined workers; for the DataLoader, the main
process's share included): on a machine shared with other work the wall rates fall, the CPU-second rates much less.
The load average before and after is recorded.

On a shared machine whose speed drifts by tens of percent from minute to minute, pipelines timed one after another
compare different minutes. `--interleave` pairs them: in-process, every pipeline processes one batch in turn; through
the DataLoader, every pipeline's loader runs at once (persistent workers, consumed one batch each in turn) and is
charged the CPU time of its own workers (Linux /proc) and of the consuming thread in its `next`. Each ratio (ours /
timm, ours / legacy) is then the ratio of images per CPU-second, with a 95% interval over blocks of batches
(bench/paired.py).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from bench.paired import interleaved_in_process, interleaved_loaders
from relabel.records import git_state, runs_root, write_json_atomic

BATCH = 64
SIZE = 224
JITTER = 0.4
NUM_CLASSES, K, GRID = 1000, 5, (15, 15)
DATA_VERSION = 1  # bump when the generator changes: the cache is keyed by it


# --- the images -----------------------------------------------------------------------------------------------

def _image_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) with ImageNet train's spread: ~3/4 have a 500-px long side (4:3 mostly, also 3:2 and 1:1),
    the rest from ~250 to ~1000 px; a quarter portrait."""
    long = 500 if rng.random() < 0.75 else int(rng.choice([rng.uniform(250, 500), rng.uniform(500, 1000)]))
    ratio = rng.choice([4 / 3, 3 / 2, 1.0, rng.uniform(1.0, 2.0)], p=[0.6, 0.15, 0.1, 0.15])
    short = max(64, round(long / ratio))
    return (short, long) if rng.random() < 0.25 else (long, short)


def textured_image(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """Natural-image-like content: luminance noise over 8 octaves (1/f-like), low-frequency colour, sensor noise,
    and a few hard-edged outlines."""
    lum = np.zeros((h, w), np.float32)
    chroma = np.zeros((h, w, 3), np.float32)
    for octave in range(1, 9):
        gw, gh = max(2, w * 2 ** octave // 256), max(2, h * 2 ** octave // 256)
        up = lambda a: np.asarray(Image.fromarray(a, "F").resize((w, h), Image.BICUBIC))  # noqa: E731
        lum += up(rng.normal(0, 34.0 / octave ** 0.5, (gh, gw)).astype(np.float32))
        if octave <= 4:
            for c in range(3):
                chroma[..., c] += up(rng.normal(0, 25.0, (gh, gw)).astype(np.float32))
    out = lum[..., None] + chroma + rng.normal(0, 5, (h, w, 1)).astype(np.float32) + rng.uniform(70, 180, 3)
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 9))):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        box = (x0, y0, x0 + rng.uniform(20, w / 2), y0 + rng.uniform(20, h / 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, outline=colour, width=int(rng.integers(1, 6)))
    return img


def _write_image(root: Path, seed: int, small: bool, i: int) -> str:
    rng = np.random.default_rng([seed, i])
    w, h = _image_size(rng)
    if small:
        w, h = max(32, w // 4), max(32, h // 4)
    rel = f"n{i % 100:08d}/n{i % 100:08d}_{i}.JPEG"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    textured_image(rng, w, h).save(buf, "JPEG", quality=92)
    (root / rel).write_bytes(buf.getvalue())
    return rel


def build_images(root: Path, n: int, seed: int = 0, small: bool = False, processes: int = 1) -> list[str]:
    """The n JPEGs under root/<wnid>/ (made once: a finished tree has its manifest.json) and their relative paths;
    image i depends only on (seed, i), so `processes` > 1 makes the same tree faster."""
    manifest = root / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())["paths"]
    make = functools.partial(_write_image, root, seed, small)
    if processes > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            paths = pool.map(make, range(n), chunksize=max(1, n // (8 * processes)))
    else:
        paths = [make(i) for i in range(n)]
    write_json_atomic(manifest, {"version": DATA_VERSION, "n": n, "seed": seed, "paths": paths})
    return paths


def build_store(root: Path, paths: list[str], seed: int = 0):
    """A float32 top-5 store of random 15 × 15 maps for the images (the default ReLabel row's dtype)."""
    from bench.bench_pooling import synthetic_maps
    from relabel.store import LabelMapStore
    path = root / "labelmaps"
    if (root / "labelmaps.done").exists():
        return LabelMapStore.open(path)
    w = LabelMapStore.create(path, paths, num_classes=NUM_CLASSES, k=K, grid=GRID, score_dtype="float32",
                             annotator="synthetic (bench_loader)", input_size=475)
    rows = w.rows(paths)
    rng = np.random.default_rng(seed)
    for s in range(0, len(paths), 500):
        scores, idx = synthetic_maps(len(rows[s:s + 500]), rng)
        w.write(rows[s:s + 500], scores, idx)
    store = w.finalize()
    (root / "labelmaps.done").touch()
    return store


# --- the pipeline before issue 27, kept verbatim to time it beside the current one ---------------------------------

def _legacy_load_rgb(path):
    """PIL decode + convert, as timm's ImageDataset loads and as this project did before issue 27."""
    with Image.open(path) as im:
        return im.convert("RGB")


def _pil_load_rgb(path):
    """PIL decode alone (no copy of an RGB image): load_rgb before its simplejpeg path, the floor PIL allows."""
    with Image.open(path) as im:
        im.load()
        return im if im.mode == "RGB" else im.convert("RGB")


def _legacy_finish(self, batch):
    """BatchedColorJitterNormalize.finish as of 1017022: the whole batch in float, group by group."""
    x = batch.pixels.float()
    if self.jitters:
        n = x.shape[0]
        order = batch.order[batch.order != 3].view(n, 3)
        key = order[:, 0] * 9 + order[:, 1] * 3 + order[:, 2]
        for k in key.unique().tolist():
            idx = (key == k).nonzero().squeeze(1)
            sub = x[idx]
            for op in order[idx[0]].tolist():
                f = batch.factors[idx, op]
                if not bool((f == 1.0).all()):
                    sub = self._op(sub, op, f.view(-1, 1, 1, 1))
            x[idx] = sub
    mean = torch.tensor(self.mean).view(1, 3, 1, 1)
    std = torch.tensor(self.std).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


class _LegacyTrainSet(torch.utils.data.Dataset):
    """TrainSet's item with the old load_rgb (a copy of every decoded RGB image)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        from relabel import loader as L
        s = self.ds.samples[i]
        img = _legacy_load_rgb(self.ds.root / s.path)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(L._mix(self.ds.seed, self.ds.epoch, i))
            x, box, flipped = self.ds.transform(img)
        return x, box, flipped, s.label, int(self.ds.rows[i])


class _Collate:
    """The collate of one pipeline: 'legacy' (default_collate + the old finish), 'loader' (the current collate,
    finished there), 'device' (the current 8-bit collate, left for the device); with ReLabel targets or not."""

    def __init__(self, pipeline: str, transform, store=None):
        self.pipeline, self.transform, self.store = pipeline, transform, store
        self.jitter = transform.transforms[-1]

    def __call__(self, samples):
        from torch.utils.data import default_collate
        from relabel.loader import collate_train
        from relabel.pooling import relabel_target
        if self.pipeline == "legacy":
            x, boxes, flips, labels, rows = default_collate(samples)
            x = _legacy_finish(self.jitter, x)
        else:
            x, boxes, flips, labels, rows = collate_train(samples, self.transform, self.pipeline == "loader")
        if self.store is None:
            return x, labels
        scores, indices = self.store.read_batch(rows.numpy())
        return x, relabel_target(scores, indices, boxes, NUM_CLASSES, variant="localized_multi", flips=flips,
                                 labels=labels)


# --- timing -------------------------------------------------------------------------------------------------------

def _cpu_parts() -> tuple[float, float]:
    """CPU seconds of this process, and of its finished children (joined DataLoader workers)."""
    import resource
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time(), c.ru_utime + c.ru_stime


def _rate(fn, n: int, cpu: dict | None = None, key=None) -> float:
    """Images/s of wall time; with `cpu`, also images per CPU-second (this process and its joined workers) into
    cpu[key]: the per-core rate that other load on a shared machine does not lower."""
    t, (own, kids) = time.perf_counter(), _cpu_parts()
    fn()
    wall = time.perf_counter() - t
    if cpu is not None:
        import gc
        own_after = time.process_time()  # before the collection: its own CPU (~0.1-0.2 s with torch and timm
        gc.collect()  # loaded) is no pipeline's; it reaps a finished loader's workers, whose CPU time then counts
        cpu[key] = n / max(own_after - own + _cpu_parts()[1] - kids, 1e-9)
    return n / wall


def _batches(n: int) -> list[list[int]]:
    return [list(range(s, s + BATCH)) for s in range(0, n - BATCH + 1, BATCH)]


def _pin_worker(worker_id: int) -> None:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[worker_id % len(cores)]})


def _chain_init(first, worker_id: int) -> None:
    if first is not None:
        first(worker_id)
    _pin_worker(worker_id)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_loader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=3000, help="JPEGs to generate and time (default 3000)")
    ap.add_argument("--quick", action="store_true", help="64 quarter-size images, 1 worker: a smoke run in seconds")
    ap.add_argument("--workers", type=int, nargs="+", help="DataLoader worker counts (default 1..cores)")
    ap.add_argument("--pipeline", nargs="+", choices=("legacy", "loader", "device"),
                    default=["legacy", "loader", "device"], help="this project's pipelines to time (default all)")
    ap.add_argument("--pin", action="store_true", help="pin the in-process timing and each worker to one core")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="passes per pipeline, in rounds (default 1); each figure is the best pass, the median "
                         "beside it: on a shared machine, 3 or more")
    ap.add_argument("--interleave", action="store_true",
                    help="paired timing for a shared machine: the pipelines take turns batch by batch (in-process) and "
                         "their loaders run side by side (DataLoader), each timed by the CPU time it used, so a "
                         "slow spell falls on all of them alike; ratios come with 95%% intervals over blocks of "
                         "batches. --repeat N: N passes over the images")
    ap.add_argument("--out", help="the JSON (default bench/measured/<date>_bench_loader.json)")
    a = ap.parse_args(argv)
    n = 64 if a.quick else a.images
    if n < BATCH:
        ap.error(f"--images must be at least one batch ({BATCH})")
    if a.repeat < 1:
        ap.error("--repeat must be at least 1")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = a.workers or ([1] if a.quick else list(range(1, cores + 1)))
    torch.set_num_threads(1)
    if a.pin:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import timm
    from timm.data import ImageDataset, create_loader, create_transform
    from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, Sample, TrainSet, load_rgb, train_transform
    from relabel.hardware import cpu_class

    data = runs_root() / "bench" / f"loader-v{DATA_VERSION}-{n}{'-small' if a.quick else ''}"
    t0 = time.perf_counter()
    paths = build_images(data / "images", n, small=a.quick)
    store = build_store(data, paths)
    print(f"{n} images under {data} ({time.perf_counter() - t0:.0f} s to make or find)", flush=True)
    files = [data / "images" / p for p in paths]
    kb = float(np.mean([f.stat().st_size for f in files]) / 1e3)
    # Warm the page cache: a tree found on disk from an earlier run is cold, and the first timing (decode) would pay
    # the disk reads the later ones do not (seen: PIL decode 312 images/s cold, 662 warm, one pass after the other).
    for f in files:
        f.read_bytes()
    # ... and the decoders: the first timed pass ran ~40% slow (PIL decode 328 images/s, then 640 on the same files)
    for f in files[:200]:
        _pil_load_rgb(f), load_rgb(f)
    load_before = os.getloadavg()
    finish_ms = {}
    # Every timing is a pass over the images, repeated --repeat times in rounds (each round times every pipeline
    # once, so a slow spell of a shared machine falls on all of them); a pipeline's figure is its best pass
    # (timeit's convention: other work on the machine only ever slows a pass down), its median pass beside it.
    passes_in: dict = {}
    passes_loader: dict = {}

    def report(kind, name, value, per_cpu, extra=""):
        print(f"{kind:<12} {name:<46} {value:8.1f} images/s ({per_cpu:.1f} per CPU-second){extra}", flush=True)

    decoders = (("decode (PIL)", _pil_load_rgb), ("decode (ours: load_rgb, simplejpeg)", load_rgb))
    in_process = [(name, functools.partial(lambda load: [load(f) for f in files], load), n) for name, load in decoders]
    tt = create_transform(SIZE, is_training=True, scale=(0.08, 1.0), hflip=0.5, color_jitter=JITTER,
                          interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    in_process.append(("timm create_transform", lambda: [tt(_legacy_load_rgb(f)) for f in files], n))
    # the same work one batch at a time (--interleave): name -> fn(indices of one batch)
    steps = {name: functools.partial(lambda load, b: [load(files[i]) for i in b], load) for name, load in decoders}
    steps["timm create_transform"] = lambda b: [tt(_legacy_load_rgb(files[i])) for i in b]

    samples = [Sample(p, i % 100) for i, p in enumerate(paths)]
    rows = store.rows(paths)
    transform = train_transform(SIZE, (0.08, 1.0), JITTER, 0.5)
    ds = TrainSet(data / "images", samples, transform, seed=0, rows=rows)
    variants = {}
    for pipe in a.pipeline:
        item_ds = _LegacyTrainSet(ds) if pipe == "legacy" else ds
        for labels, st in (("original labels", None), ("ReLabel", store)):
            variants[f"ours {pipe}, {labels}"] = (item_ds, _Collate(pipe, transform, st))
    batches = _batches(n)
    seen = len(batches) * BATCH
    for name, (item_ds, collate) in variants.items():
        for b in batches[:2]:  # untimed: the first batches of a pipeline pay one-off set-up (seen: 281 → 357 images/s)
            collate([item_ds[i] for i in b])
        in_process.append((name, functools.partial(lambda d, c: [c([d[i] for i in b]) for b in batches], item_ds,
                                                   collate), seen))
        steps[name] = functools.partial(lambda d, c, b: c([d[i] for i in b]), item_ds, collate)
    paired: dict = {}
    if a.interleave:
        paired["in_process"] = interleaved_in_process(steps, batches, a.repeat, BATCH)
        for name, r in paired["in_process"]["pipelines"].items():
            passes_in[name] = [(r["images_s"], r["images_per_cpu_s"])]
    for rnd in range(0 if a.interleave else a.repeat):
        for name, fn, count in in_process:
            cpu: dict = {}
            rate = _rate(fn, count, cpu, name)
            passes_in.setdefault(name, []).append((rate, cpu[name]))
            report("in-process", name, rate, cpu[name], f"  (pass {rnd + 1} of {a.repeat})" if a.repeat > 1 else "")
    # the CPU price of `finish` per image, were it run on this CPU: the old batch-wide passes and the current ones
    if {"legacy", "loader"} & set(a.pipeline):
        pend = [_Collate("device", transform)([ds[i] for i in b])[0] for b in batches[:4]]
        jit = transform.transforms[-1]
        for name, fn in (("legacy (whole batch)", lambda p: _legacy_finish(jit, p)), ("current (cache-sized)", jit.finish)):
            t = time.perf_counter()
            for p in pend:
                fn(p)
            finish_ms[name] = 1000 * (time.perf_counter() - t) / (len(pend) * BATCH)
            print(f"finish       {name:<46} {finish_ms[name]:8.3f} ms/image", flush=True)

    timm_ds = ImageDataset(str(data / "images"))
    loaders = []  # (name, workers, the loader, images per pass)
    for w in workers:
        init = _pin_worker if a.pin else None
        for prefetch in (False, True):
            name = f"timm create_loader ({'8-bit collate, prefetcher normalises' if prefetch else 'normalised in workers'})"
            loader = create_loader(timm_ds, (3, SIZE, SIZE), BATCH, is_training=True, scale=(0.08, 1.0), hflip=0.5,
                                   color_jitter=JITTER, interpolation="bilinear", num_workers=w,
                                   use_prefetcher=prefetch, device=torch.device("cpu"),
                                   persistent_workers=a.interleave)
            if init is not None:  # after timm's own worker seeding
                dl = loader.loader if prefetch else loader
                dl.worker_init_fn = functools.partial(_chain_init, dl.worker_init_fn)
            loaders.append((name, w, loader, len(loader) * BATCH))
        for name, (item_ds, collate) in variants.items():
            loaders.append((name, w, torch.utils.data.DataLoader(item_ds, batch_size=BATCH, num_workers=w,
                                                                 collate_fn=collate, drop_last=True,
                                                                 worker_init_fn=init,
                                                                 persistent_workers=a.interleave), seen))
    if a.interleave:
        paired["dataloader"] = {}
        for w in workers:
            got = interleaved_loaders([(nm, ld) for nm, ww, ld, _ in loaders if ww == w], a.repeat)
            paired["dataloader"][w] = got
            for name, r in got["pipelines"].items():
                passes_loader.setdefault(name, {})[w] = [(r["images_per_cpu_s"] * w, r["images_per_cpu_s"])]
    for rnd in range(0 if a.interleave else a.repeat):
        for name, w, loader, count in loaders:
            cpu = {}
            rate = _rate(functools.partial(lambda ld: [None for _ in ld], loader), count, cpu, name)
            passes_loader.setdefault(name, {}).setdefault(w, []).append((rate, cpu[name]))
            report(f"loader w={w}", name, rate, cpu[name], f"  ({rate / w:.1f} per worker)"
                   + (f"  (pass {rnd + 1} of {a.repeat})" if a.repeat > 1 else ""))

    def best(ps):
        return max(r for r, _ in ps)

    def median(ps):
        return float(np.median([r for r, _ in ps]))

    ims_in_process = {k: best(v) for k, v in passes_in.items()}
    cpu_in = {k: max(c for _, c in v) for k, v in passes_in.items()}
    ims_loader = {k: {w: {"images_s": best(ps), "per_worker": best(ps) / w, "per_cpu_s": max(c for _, c in ps),
                          "median_images_s": median(ps)} for w, ps in by_w.items()}
                  for k, by_w in passes_loader.items()}
    git = git_state()
    out = {
        "what": "images/s of the training input pipeline, Table 3 full-scale recipe (RRC 224, flip, jitter 0.4, "
                "normalise), batches of 64; in-process = one thread on one core",
        "cpu_class": cpu_class(), "isa": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(), "cores": cores, "pinned": a.pin,
        "commit": git.get("sha"), "dirty": git.get("dirty"), "date": datetime.date.today().isoformat(),
        "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "torch": torch.__version__, "timm": timm.__version__, "pillow": Image.__version__, "host": platform.node(),
        "images": n, "mean_kb": kb, "mean_pixels": float(np.mean([Image.open(f).size[0] * Image.open(f).size[1]
                                                                     for f in files[:500]])),
        "batch": BATCH, "input_size": SIZE,
        "repeat": a.repeat,
        "statistic": ("the best of `repeat` passes per pipeline (timeit's convention: other work on the machine "
                      "only slows a pass), its median pass beside it; the passes ran in rounds, every pipeline once "
                      "per round"),
        "in_process_images_s": ims_in_process, "in_process_images_per_cpu_s": cpu_in,
        "in_process_median_images_s": {k: median(v) for k, v in passes_in.items()},
        "in_process_passes_images_s": {k: [r for r, _ in v] for k, v in passes_in.items()},
        "dataloader": ims_loader, "finish_cpu_ms_per_image": finish_ms,
    }
    if a.interleave:
        out["statistic"] = ("interleaved (paired): in-process, the pipelines took turns batch by batch, each rate its "
                            "images over the wall and CPU time of its own batches; DataLoader, every pipeline's "
                            "loader ran side by side, consumed in turns, each rate its images per CPU-second of its "
                            "workers (and of the consuming process for its batches): images_s there is that per-core "
                            "rate × workers, not a wall-clock rate. `paired` has ratios with 95% intervals over "
                            "blocks of batches.")
        out["paired"] = paired
    dest = Path(a.out or Path(__file__).parent / "measured" / f"{out['date']}_bench_loader.json")
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(dest, out)
    print(f"load average before {load_before[0]:.2f}, after {out['load_avg_after'][0]:.2f}; wrote {dest}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())

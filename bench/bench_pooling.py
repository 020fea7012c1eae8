"""Benchmark of the label-map path: store bytes/image, read+pool crops/s on one CPU core, pooling vs a train step.

Goals (issue 4, item 7): ≤ 2.5 KB/image at 8-bit (k=5, 15×15, 1000 classes; official fp32 .pt: 9 KB),
≥ 20k crops/s read + pool on one CPU core, LabelPooling ≤ 0.2% of a ResNet-50 train step on a GPU.
Not a timed test: run it by hand (or `make bench`) and keep the JSON it writes.

    python -m bench.bench_pooling --out runs/bench_pooling.json                 # CPU, ~20 s on 2 cores
    python -m bench.bench_pooling --device cuda --annotator tf_efficientnet_l2 --out runs/bench_pooling_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from relabel.pooling import crop_weights, dense_label_pool, relabel_target
from relabel.store import LabelMapStore

K, GRID, C = 5, (15, 15), 1000


def synthetic_maps(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Best-first top-5 maps like an annotator's: each image draws its classes from a small palette."""
    palette = np.argsort(rng.random((n, C)), axis=1)[:, :24]                       # 24 candidate classes
    pick = np.argsort(rng.random((n, GRID[0] * GRID[1], 24)), axis=2)[..., :K]       # 5 distinct per location
    idx = np.take_along_axis(palette, pick.reshape(n, -1), 1).reshape(n, -1, K)
    scores = -np.sort(-rng.normal(2.0, 3.0, size=idx.shape), axis=2)
    shape = (n, K, *GRID)
    return scores.astype(np.float32).transpose(0, 2, 1).reshape(shape), idx.transpose(0, 2, 1).reshape(shape)


def random_crops(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomResizedCrop(0.08–1, 3/4–4/3) boxes in [0, 1] and coin-flip flags (square image for simplicity)."""
    area = torch.empty(n).uniform_(0.08, 1.0, generator=gen)
    ratio = torch.exp(torch.empty(n).uniform_(np.log(3 / 4), np.log(4 / 3), generator=gen))
    w, h = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)
    x1, y1 = torch.rand(n, generator=gen) * (1 - w), torch.rand(n, generator=gen) * (1 - h)
    return torch.stack([x1, y1, x1 + w, y1 + h], 1), torch.rand(n, generator=gen) < 0.5


def build_stores(workdir: Path, n: int, seed: int) -> dict[str, LabelMapStore]:
    rng = np.random.default_rng(seed)
    paths = [f"n{c:08d}/n{c:08d}_{i}.JPEG" for c in range(C) for i in range(-(-n // C))][:n]
    scores, idx = synthetic_maps(n, rng)
    stores = {}
    for dtype in ("float32", "float16", "uint8"):
        w = LabelMapStore.create(workdir / dtype, paths, num_classes=C, k=K, grid=GRID, score_dtype=dtype,
                                 annotator="synthetic", input_size=475)
        rows = w.rows(paths)
        for s in range(0, n, 1000):
            w.write(rows[s:s + 1000], scores[s:s + 1000], idx[s:s + 1000])
        stores[dtype] = w.finalize()
    return stores


def timeit(fn, iters: int, sync=lambda: None) -> float:
    """Median seconds per call after two warm-up calls."""
    fn(), fn()
    sync()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def cpu_read_pool(store: LabelMapStore, batch: int, iters: int, seed: int) -> dict:
    torch.set_num_threads(1)  # one CPU core, as a single DataLoader worker would have
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    batches = [(rng.integers(0, len(store), batch), *random_crops(batch, gen)) for _ in range(iters + 2)]
    it = iter(batches * 2)

    def read():
        rows, _, _ = next(it)
        return store.read_batch(rows)

    maps = store.read_batch(batches[0][0])
    t_read = timeit(read, iters)
    t_pool = timeit(lambda: relabel_target(*maps, batches[0][1], C, flips=batches[0][2]), iters)
    it2 = iter(batches * 2)

    def both():
        rows, boxes, flips = next(it2)
        s, i = store.read_batch(rows)
        return relabel_target(s, i, boxes, C, flips=flips)

    t_both = timeit(both, iters)
    t_dense = timeit(lambda: torch.softmax(dense_label_pool(*maps, batches[0][1], C, official=True), 1), 3)
    return {"batch": batch, "read_ms": t_read * 1e3, "pool_ms": t_pool * 1e3, "read_pool_ms": t_both * 1e3,
            "crops_per_s": batch / t_both, "official_dense_pool_crops_per_s": batch / t_dense}


def step_ratio(store: LabelMapStore, device: str, batch: int, iters: int, amp: bool, seed: int) -> dict:
    """Pooling cost (top-k host→device copy + pool + softmax) relative to one ResNet-50 train step."""
    import timm

    dev = torch.device(device)
    torch.set_num_threads(os.cpu_count() if dev.type == "cuda" else 2)  # the official host-side build is threaded
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    model = timm.create_model("resnet50", pretrained=False, num_classes=C).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = torch.randn(batch, 3, 224, 224, device=dev).to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    rows = np.random.default_rng(seed).integers(0, len(store), batch)
    s_cpu, i_cpu = store.read_batch(rows, compact=True)  # int16 class ids: fewer bytes to copy
    if dev.type == "cuda":
        s_cpu, i_cpu = s_cpu.pin_memory(), i_cpu.pin_memory()
    boxes, flips = random_crops(batch, gen)
    target = relabel_target(s_cpu.to(dev), i_cpu.to(dev), boxes.to(dev), C)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = torch.sum(-target * torch.log_softmax(model(x).float(), 1), 1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def pool():  # (a) everything on the device: top-k copy, crop weights, scatter, softmax
        s, i = s_cpu.to(dev, non_blocking=True), i_cpu.to(dev, non_blocking=True)
        return relabel_target(s, i, boxes.to(dev, non_blocking=True), C, flips=flips.to(dev, non_blocking=True))

    wts = crop_weights(boxes, GRID, 1, flips)  # (b) crop weights made in the DataLoader workers (CPU)
    wts = tuple(t.pin_memory() for t in wts) if dev.type == "cuda" else wts

    def pool_split():
        s, i = s_cpu.to(dev, non_blocking=True), i_cpu.to(dev, non_blocking=True)
        return relabel_target(s, i, None, C, weights=wts)

    tgt = relabel_target(s_cpu, i_cpu, boxes, C, flips=flips)  # (c) the whole target made in the workers
    tgt = tgt.pin_memory() if dev.type == "cuda" else tgt

    def pool_in_worker():
        return tgt.to(dev, non_blocking=True)

    def official_style():  # dense map built on the host, copied, then roi_align on the device (official loader)
        d = torch.zeros(batch, C, *GRID)
        d.scatter_(1, i_cpu.long(), s_cpu)
        d = d.to(dev)
        rois = torch.cat([torch.arange(batch)[:, None].float(), boxes[:, [1, 0, 3, 2]] * GRID[1] - 0.5], 1).to(dev)
        from torchvision.ops import roi_align
        return torch.softmax(roi_align(d, rois, (1, 1))[:, :, 0, 0], 1)

    on_dev = (s_cpu.to(dev), i_cpu.to(dev), boxes.to(dev), flips.to(dev))
    t_step = timeit(step, iters, sync)
    t_pool = timeit(pool, max(iters, 20), sync)
    t_pool_only = timeit(lambda: relabel_target(*on_dev[:3], C, flips=on_dev[3]), max(iters, 20), sync)
    t_split = timeit(pool_split, max(iters, 20), sync)
    t_worker = timeit(pool_in_worker, max(iters, 20), sync)
    t_off = timeit(official_style, max(iters // 2, 3), sync)
    return {"device": device, "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor(),
            "batch": batch, "amp_bf16": amp, "step_ms": t_step * 1e3, "pool_ms": t_pool * 1e3,
            "pool_over_step": t_pool / t_step,
            "pool_without_copy_ms": t_pool_only * 1e3,
            "pool_split_ms": t_split * 1e3, "pool_split_over_step": t_split / t_step,
            "pool_in_worker_device_ms": t_worker * 1e3, "pool_in_worker_over_step": t_worker / t_step, "official_style_pool_ms": t_off * 1e3,
            "official_style_over_step": t_off / t_step}


def annotation_rate(device: str, model_name: str, size: int, batch: int, iters: int) -> dict:
    """Annotator images/s: fully-convolutional forward + top-5 (random weights; speed only)."""
    import timm

    from relabel.fully_conv import label_map, topk_label_map

    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    model = timm.create_model(model_name, pretrained=False).to(dev).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            return topk_label_map(label_map(model, x, check=False).float(), K)

    grid = tuple(run()[0].shape[-2:])
    t = timeit(run, iters, sync)
    return {"model": model_name, "input_size": size, "grid": grid, "batch": batch, "images_per_s": batch / t}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench_pooling.json", help="JSON file to write (default: %(default)s)")
    ap.add_argument("--device", default="cpu", help="device of the train-step comparison: cpu or cuda")
    ap.add_argument("--images", type=int, default=10_000, help="synthetic store size (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=256, help="crops per read+pool batch (default: %(default)s)")
    ap.add_argument("--iters", type=int, default=30, help="timed read+pool batches (default: %(default)s)")
    ap.add_argument("--step-batch", type=int, default=None, help="train-step batch (default: 8 on cpu, 256 on cuda)")
    ap.add_argument("--step-iters", type=int, default=None, help="timed train steps (default: 3 on cpu, 20 on cuda)")
    ap.add_argument("--no-amp", action="store_true", help="fp32 train step on cuda (default: bf16 autocast)")
    ap.add_argument("--annotator", default=None, help="also time annotation with this timm model, e.g. tf_efficientnet_l2")
    ap.add_argument("--annotator-size", type=int, default=475)
    ap.add_argument("--workdir", default=None, help="where the synthetic stores go (default: a temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--records", default=None,
                    help="also append a 'bench/relabel' record here (make bench: the SCALE's records file), which "
                         "fills the costs table (`make costs`)")
    ap.add_argument("--scale", default="mini", help="scale written into the record (default: %(default)s)")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but torch sees no GPU; run on a GPU machine or use --device cpu.")

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        stores = build_stores(work, args.images, args.seed)
        out = {"settings": {"k": K, "grid": GRID, "num_classes": C, "images": args.images,
                            "torch": torch.__version__, "machine": platform.machine()},
               "store_build_s": time.perf_counter() - t0,
               "bytes_per_image": {d: s.bytes_per_image() for d, s in stores.items()},
               "official_fp32_pt_bytes_per_image": 2 * K * GRID[0] * GRID[1] * 4}
        out["cpu_read_pool"] = {d: cpu_read_pool(s, args.batch, args.iters, args.seed) for d, s in stores.items()}
        out["train_step"] = step_ratio(stores["uint8"], args.device, args.step_batch or (256 if cuda else 8),
                                       args.step_iters or (20 if cuda else 3), cuda and not args.no_amp, args.seed)
        if args.annotator:
            out["annotation"] = annotation_rate(args.device, args.annotator, args.annotator_size,
                                                32 if cuda else 2, 5 if cuda else 2)
    b8, rp, st = out["bytes_per_image"]["uint8"], out["cpu_read_pool"]["uint8"], out["train_step"]
    out["goals"] = {"bytes_8bit_le_2500": b8["on_disk"] <= 2500, "crops_per_s_ge_20k": rp["crops_per_s"] >= 20_000,
                    "pool_le_0.2pct_of_step": {"a_all_on_device": st["pool_over_step"] <= 0.002,
                                               "b_weights_in_workers": st["pool_split_over_step"] <= 0.002,
                                               "c_target_in_workers": st["pool_in_worker_over_step"] <= 0.002},
                    "step_device": st["device"]}
    for d, b in out["bytes_per_image"].items():
        print(f"store {d:8s}: {b['payload']:7.0f} B/image of map data, {b['on_disk']:7.0f} B/image on disk")
    for d, r in out["cpu_read_pool"].items():
        print(f"read+pool {d:8s}: {r['crops_per_s']:8.0f} crops/s on 1 core (read {r['read_ms']:.2f} ms + pool "
              f"{r['pool_ms']:.2f} ms per {r['batch']}; official dense pooling {r['official_dense_pool_crops_per_s']:.0f} crops/s)")
    print(f"train step ({st['device']}, batch {st['batch']}): {st['step_ms']:.1f} ms; LabelPooling on the step's device: "
          f"(a) all on device {st['pool_ms']:.3f} ms = {100 * st['pool_over_step']:.3f}%, "
          f"(b) weights from workers {st['pool_split_ms']:.3f} ms = {100 * st['pool_split_over_step']:.3f}%, "
          f"(c) target from workers {st['pool_in_worker_device_ms']:.3f} ms = {100 * st['pool_in_worker_over_step']:.3f}%; "
          f"official-style dense host build {st['official_style_pool_ms']:.1f} ms = {100 * st['official_style_over_step']:.1f}%")
    if "annotation" in out:
        a = out["annotation"]
        print(f"annotation {a['model']} @{a['input_size']} -> grid {a['grid']}: {a['images_per_s']:.1f} images/s")
    print("goals:", out["goals"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    if args.records:
        from relabel import records as R
        R.append(args.records, bench_record(out, vars(args), time.perf_counter() - t0, args.scale))
        print(f"appended the bench record to {args.records}")
    return out


IMAGENET_TRAIN_IMAGES = 1_281_167


def bench_record(out: dict, args: dict, wall_s: float, scale: str) -> dict:
    """The costs-table record: per-image figures measured here, extrapolated to ImageNet-1k's train set.

    GPU-only figures (pooling share of a training step, annotation GPU-hours) are recorded under their paper
    names only when the step ran on a GPU; a CPU run records them with a `_cpu` suffix, so the costs table never
    puts a CPU ratio beside the paper's GPU figure."""
    from relabel import records as R
    st, b = out["train_step"], out["bytes_per_image"]
    gpu = st["device"].startswith("cuda")
    sfx = "" if gpu else "_cpu"
    m = {"store_gb_imagenet": b["uint8"]["on_disk"] * IMAGENET_TRAIN_IMAGES / 1e9,
         **{f"store_gb_imagenet_{d}": v["on_disk"] * IMAGENET_TRAIN_IMAGES / 1e9 for d, v in b.items()},
         "bytes_per_image_8bit": b["uint8"]["on_disk"],
         "crops_per_s_one_core": out["cpu_read_pool"]["uint8"]["crops_per_s"],
         f"pooling_overhead_pct{sfx}": 100 * st["pool_in_worker_over_step"],
         "step_ms": st["step_ms"]}
    if "annotation" in out:
        m[f"annotation_gpu_h_imagenet{sfx}"] = IMAGENET_TRAIN_IMAGES / out["annotation"]["images_per_s"] / 3600
        m["annotation_images_per_s"] = out["annotation"]["images_per_s"]
    return R.make_record(experiment="bench/relabel", evaluator="bench", metrics=m,
                         config={"bench": {k: v for k, v in args.items() if k not in ("out", "records")},
                                 "settings": out["settings"], "step_device": st["device"],
                                 "annotation_model": out.get("annotation", {}).get("model", "")},
                         scale=scale, seed=0, wall_time_s=wall_s,
                         dataset={"name": "synthetic-imagenet-top5", "split": "bench",
                                  "size": out["settings"]["images"]})


if __name__ == "__main__":
    main()

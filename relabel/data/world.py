"""Build, cache and describe a whole mini world: every split written atomically into one versioned folder.

A world lives in ``<root>/mini-v<GENERATOR_VERSION>-seed<S>`` (plus ``-<knob hash>`` when a knob differs from
the calibrated default). It is built in a temporary sibling folder and renamed into place only when complete,
so a killed run never leaves a world that looks finished; ``world.json`` (written last) marks a complete world,
and ``stats.json`` holds the statistics printed by the CLI. Processes that ask for the same world at once (the
workers of ``make -j``) wait for one build behind a file lock; a large world's independent splits are written by
a second process while this one writes the rest (the default world: 17-20 s in `make` runs on 2 cores, where two
workers used to build it at once in 28 s), with byte-identical files, since every split draws from its own
seeded generator.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Callable

from .bench_splits import ReferenceClassifier, write_bgc, write_imagenet_a, write_v2
from .coco_split import write_coco
from .world_config import GENERATOR_VERSION, WorldConfig, make_config
from .core_splits import write_scene_folder, write_val
from .finegrained import write_finegrained
from .formats import write_json
from .scenes import true_labels
from .sources import CLASS_NAMES, load_sources
from .stats import PAPER_FIG2, PAPER_REAL_MULTILABEL, crop_iou_stats, multilabel_fraction

__all__ = ["ensure_world", "build_world", "world_name", "load_stats", "format_stats", "write_preview"]

_FIG2_SEED = 0  # crops are drawn with a fixed seed so the statistics of one world never change


def world_name(seed: int, cfg: WorldConfig) -> str:
    name = f"mini-v{GENERATOR_VERSION}-seed{seed}"
    return name if cfg.is_default() else f"{name}-{cfg.short_hash()}"


def ensure_world(root: str | Path, seed: int = 0, *, preview: bool = False,
                 log: Callable[[str], None] = print, **knobs) -> Path:
    """Return the folder of the world for (seed, knobs) under ``root``, building it first if it is not cached."""
    cfg = make_config(**knobs)
    root = Path(root)
    final = root / world_name(seed, cfg)
    if (final / "world.json").is_file() and not os.access(root, os.W_OK):
        # A complete world never changes (its name is its identity, world.json is written last), so reading it
        # needs no lock: a read-only data root (a shared or mounted copy) works for everything that only reads it.
        log(f"reusing cached mini world {final} (read-only)")
        if preview:
            log("preview: not written, the data root is read-only")
        return final
    if not (final / "world.json").is_file() and root.is_dir() and not os.access(root, os.W_OK):
        raise WorldNotWritable(f"the mini world {final} is not built yet and {root} is not writable, and building it "
                               f"writes there; point RELABEL_DATA at a writable folder (or build it where it can be "
                               f"written: python -m relabel.data --out DIR)")
    root.mkdir(parents=True, exist_ok=True)
    from relabel.launch import artifact
    built = []
    # The shared-artifact primitive: another process building this world makes this one wait for it; under
    # torchrun rank 0 builds while the others wait. The folder's name is its identity (generator version, seed,
    # knob hash), so there is nothing else to stamp; world.json, written last, marks it complete.
    artifact(final, None, lambda: built.append(_build_locked(root, final, seed, cfg, log)),
             ready=(final / "world.json").is_file, lock=root / f".{final.name}", log=log)
    if not built:
        log(f"reusing cached mini world {final}")
    if preview:
        log(f"preview: {write_preview(final)}")
    return final


class WorldNotWritable(FileNotFoundError):
    """The world asked for is not built and its folder cannot be written: one sentence naming the folder (a user
    error, as a missing data folder is)."""


def _build_locked(root: Path, final: Path, seed: int, cfg: WorldConfig, log: Callable[[str], None]) -> None:
    if (final / "world.json").is_file():
        log(f"reusing cached mini world {final}")
        return
    if final.exists():
        raise RuntimeError(f"{final} exists but is not a complete mini world (no world.json); delete it and rerun.")
    _remove_stale_temps(root, final.name)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    build_world(tmp, seed, cfg)
    os.rename(tmp, final)
    log(f"built mini world {final} in {time.perf_counter() - start:.1f} s")


def _remove_stale_temps(root: Path, name: str) -> None:
    """Delete temporary folders of this world left by processes that no longer run."""
    for tmp in root.glob(f".tmp-{name}-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user owns it


_PARALLEL_MIN_IMAGES = 5000  # below this many train + extra images a second process costs more than it saves


def _write_independent(dest: Path, seed: int, cfg: WorldConfig, sources=None) -> tuple[dict, dict]:
    """The splits that read no other split (extra, bgc, finegrained): their (counts, seconds)."""
    sources = sources if sources is not None else load_sources()
    counts, times = {}, {}
    t = time.perf_counter()
    counts["extra"] = write_scene_folder(dest, "extra", seed, cfg, sources, cfg.n_extra, "fit", True)[1]
    times["extra"] = round(time.perf_counter() - t, 2)
    for name, write in (("bgc", write_bgc), ("finegrained", write_finegrained)):
        t = time.perf_counter()
        counts[name] = write(dest, seed, cfg, sources)
        times[name] = round(time.perf_counter() - t, 2)
    return counts, times


def build_world(dest: Path, seed: int, cfg: WorldConfig, parallel: bool | None = None) -> dict:
    """Write every split of the world into ``dest`` and return its statistics (also saved as stats.json).

    `parallel` (default: on a multi-core machine, for a world of at least 5,000 train + extra images) writes the
    splits that depend on no other one in a second process; the files are the same either way."""
    sources = load_sources()
    dest.mkdir(parents=True, exist_ok=True)
    times, counts = {}, {}
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and cfg.n_train + cfg.n_extra >= _PARALLEL_MIN_IMAGES
    pool = helper = None
    if parallel:
        import concurrent.futures as cf
        import multiprocessing as mp
        pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
        helper = pool.submit(_write_independent, dest, seed, cfg)

    def timed(name, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        times[name] = round(time.perf_counter() - t, 2)
        return out

    try:
        # ImageNet-A's filter model is trained on a different split (train) than the one it filters.
        ref_train, counts["train"] = timed("train", write_scene_folder, dest, "train", seed, cfg, sources,
                                           cfg.n_train, "fit", False, 2000)
        if len({s.label for s in ref_train}) < 2:
            raise ValueError("n_train must give at least two classes to train the ImageNet-A reference classifier.")
        val, val_info = timed("val", write_val, dest, seed, cfg, sources)
        counts["val"] = val_info["counts"]
        counts["v2"] = timed("v2", write_v2, dest, seed, cfg, sources, val_info["selection_frequency"])
        reference = timed("reference", ReferenceClassifier, [s.image for s in ref_train], [s.label for s in ref_train])
        counts["imagenet_a"] = timed("imagenet_a", write_imagenet_a, dest, seed, cfg, sources, reference)
        counts["coco"] = timed("coco", write_coco, dest, seed, cfg, sources)
        # Calibration targets (world_config.py): ReaL multi-label fraction and Fig. 2 crops against the labelled class's
        # boxes, as ImageNet's val boxes annotate only the labelled class.
        t = time.perf_counter()
        multilabel = multilabel_fraction(true_labels(s, cfg.visibility_threshold) for s in val)
        fig2 = crop_iou_stats([s.boxes_of(s.label) for s in val],
                              [(s.image.shape[1], s.image.shape[0]) for s in val], n_crops=100, seed=_FIG2_SEED)
        times["stats"] = round(time.perf_counter() - t, 2)
        more, more_times = helper.result() if helper else _write_independent(dest, seed, cfg, sources)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    times.update(more_times)
    counts.update(more)
    order = ("train", "extra", "val", "v2", "imagenet_a", "bgc", "coco", "finegrained")  # stats.json's key order
    counts = {k: counts[k] for k in order}

    stats = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "config": cfg.to_dict(),
        "classes": list(CLASS_NAMES), "counts": counts,
        "val_multilabel": multilabel, "paper_real_multilabel": PAPER_REAL_MULTILABEL,
        "fig2_val_labelled_boxes": fig2, "paper_fig2": PAPER_FIG2,
    }
    write_json(dest / "stats.json", stats)
    # Timings vary from run to run, so they stay out of the world's files (byte-identical per seed).
    write_json(dest / "world.json", {"generator_version": GENERATOR_VERSION, "seed": seed, "config": cfg.to_dict()})
    stats["build_seconds"] = times
    return stats


def load_stats(world: Path) -> dict:
    import json
    return json.loads((Path(world) / "stats.json").read_text())


def format_stats(stats: dict) -> str:
    """Human-readable summary: calibration against the paper's numbers, then counts per split."""
    ml, fig2, paper = stats["val_multilabel"], stats["fig2_val_labelled_boxes"], stats["paper_fig2"]
    lines = [
        f"mini world v{stats['generator_version']} seed {stats['seed']}",
        f"  val multi-label fraction (ReaL-style, of {ml['n_scored']} scored; {ml['n_empty']} empty): "
        f"{100 * ml['multi_fraction']:.1f}%  (ImageNet-ReaL {100 * stats['paper_real_multilabel']:.1f}%)",
        f"  Fig. 2 crops with no overlap: {100 * fig2['no_overlap']:.1f}%  (paper {100 * paper['no_overlap']:.1f}%)",
        f"  Fig. 2 crops with IoU > 0.5:  {100 * fig2['iou_gt_0.5']:.1f}%  (paper {100 * paper['iou_gt_0.5']:.1f}%)",
        "  counts:",
    ]
    for split, c in stats["counts"].items():
        lines.append(f"    {split}: {c}")
    return "\n".join(lines)


def write_preview(world: Path, n: int = 60) -> Path:
    """Contact sheet of the first ``n`` val images (by index) with their boxes, read back from disk."""
    import json

    import numpy as np
    from PIL import Image

    from .preview import contact_sheet
    records = json.loads((world / "val" / "annotations.json").read_text())["images"]
    records = sorted(records, key=lambda r: r["file"].split("/")[-1])[:n]
    images = [np.asarray(Image.open(world / "val" / r["file"]).convert("RGB")) for r in records]
    boxes = [[(o["class"], *o["box"], o["visible"]) for o in r["objects"]] for r in records]
    return contact_sheet(images, boxes, [r["label"] for r in records], world / "preview.png")

"""Build, cache and describe a whole mini world: every split written atomically into one versioned folder.

A world lives in ``<root>/mini-v<GENERATOR_VERSION>-seed<S>`` (plus ``-<knob hash>`` when a knob differs from
the calibrated default). It is built in a temporary sibling folder and renamed into place only when complete,
so a killed run never leaves a world that looks finished; ``world.json`` (written last) marks a complete world
and holds its identity (generator and test sets versions, seed, knobs: a cached world whose world.json is not the
code's is set aside and built again), and ``stats.json`` holds the statistics printed by the CLI. Processes that
ask for the same world at once (the workers of ``make -j``) wait for one build behind a file lock; a large world is
written by two processes (a second one writes the splits that read no other split, then Fig. 2's statistics and
ImageNet-A, while this one writes train, val and V2), with byte-identical files, since every split draws from its
own seeded generators.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from .bench_splits import ReferenceClassifier, write_bgc, write_imagenet_a, write_v2
from .coco_split import write_coco
from .world_config import (GENERATOR_VERSION, TEST_SETS_VERSION, TRAINING_SPLITS, WorldConfig, current_test_sets,
                           make_config, world_name)
from .core_splits import write_scene_folder, write_val
from .finegrained import write_finegrained
from .formats import write_json
from .scenes import true_labels
from .sources import CLASS_NAMES, load_sources
from .stats import PAPER_FIG2, PAPER_REAL_MULTILABEL, crop_iou_stats, multilabel_fraction

__all__ = ["ensure_world", "build_world", "world_name", "current_test_sets", "world_test_sets", "training_split_hashes",
           "load_stats", "format_stats", "write_preview"]

_FIG2_SEED = 0  # crops are drawn with a fixed seed so the statistics of one world never change


def world_test_sets(world: str | Path) -> str:
    """The identity of the test splits of the built world at `world`, read from its world.json (a world built before
    TEST_SETS_VERSION existed has version 1): what its evaluation records carry in config['test_sets']."""
    info = json.loads((Path(world) / "world.json").read_text())
    return f"{Path(world).name}/test-v{info.get('test_sets_version', 1)}"


def world_identity(seed: int, cfg: WorldConfig) -> dict:
    """What world.json holds: a cached world is the code's only when its world.json equals this."""
    return {"generator_version": GENERATOR_VERSION, "test_sets_version": TEST_SETS_VERSION, "seed": seed,
            "config": cfg.to_dict()}


def _is_current(final: Path, seed: int, cfg: WorldConfig) -> bool:
    try:
        return json.loads((final / "world.json").read_text()) == json.loads(json.dumps(world_identity(seed, cfg)))
    except FileNotFoundError:
        return False


def ensure_world(root: str | Path, seed: int = 0, *, preview: bool = False,
                 log: Callable[[str], None] = print, **knobs) -> Path:
    """Return the folder of the world for (seed, knobs) under ``root``, building it first if it is not cached.

    A cached world whose world.json is not the code's (`world_identity`: e.g. test splits of an earlier
    TEST_SETS_VERSION) is never reused: under the world's lock it is set aside as ``<name>.stale-<hash>`` (one log
    line) and built afresh."""
    cfg = make_config(**knobs)
    root = Path(root)
    final = root / world_name(seed, cfg)
    current = _is_current(final, seed, cfg)
    if current and not os.access(root, os.W_OK):
        # A complete world never changes (its name and world.json are its identity, world.json is written last), so
        # reading it needs no lock: a read-only data root (a shared or mounted copy) works for everything that only
        # reads it.
        log(f"reusing cached mini world {final} (read-only)")
        if preview:
            log("preview: not written, the data root is read-only")
        return final
    # the folder a build writes in: the root, or (a root not made yet) its nearest existing parent, where mkdir writes
    writes_in = next((d for d in (root, *root.parents) if d.is_dir()), root)
    if not current and not os.access(writes_in, os.W_OK):
        what = (f"was built by earlier code ({_differences(final, seed, cfg)})" if (final / "world.json").is_file()
                else "is not built yet")
        raise WorldNotWritable(f"the mini world {final} {what}, and building it writes in {writes_in}, which is not "
                               f"writable; point RELABEL_DATA at a writable folder (or build it where it can be "
                               f"written: python -m relabel.data --out DIR)")
    root.mkdir(parents=True, exist_ok=True)
    from relabel.stamped import artifact
    built = []
    # The shared-artifact primitive: another process building this world makes this one wait for it; under
    # torchrun rank 0 builds while the others wait. The folder's name and its world.json are its identity, so there
    # is nothing else to stamp; world.json, written last, marks it complete.
    artifact(final, None, lambda: built.append(_build_locked(root, final, seed, cfg, log)),
             ready=lambda: _is_current(final, seed, cfg), lock=root / f".{final.name}", log=log)
    if not built:
        log(f"reusing cached mini world {final}")
    if preview:
        log(f"preview: {write_preview(final)}")
    return final


class WorldNotWritable(FileNotFoundError):
    """The world asked for is not built (or was built by earlier code) and its folder cannot be written: one
    sentence naming the folder (a user error, as a missing data folder is)."""


def _differences(final: Path, seed: int, cfg: WorldConfig) -> str:
    """What a cached world's world.json says that the code's `world_identity` does not, in a few words."""
    have, want = json.loads((final / "world.json").read_text()), json.loads(json.dumps(world_identity(seed, cfg)))
    out = [f"{k} {have.get(k, 1 if k == 'test_sets_version' else None)}, the code's {want[k]}"
           for k in ("generator_version", "test_sets_version") if have.get(k, 1) != want[k]]
    knobs = sorted(k for k in set(want["config"]) | set(have.get("config", {}))
                   if have.get("config", {}).get(k) != want["config"].get(k))
    if knobs:
        out.append(f"knobs {', '.join(knobs)} differ")
    return "; ".join(out) or "another world.json"


def _build_locked(root: Path, final: Path, seed: int, cfg: WorldConfig, log: Callable[[str], None]) -> None:
    if _is_current(final, seed, cfg):
        log(f"reusing cached mini world {final}")
        return
    if (final / "world.json").is_file():
        # Built by earlier code (e.g. smaller test sets): never reused. Set aside, not deleted, as all stale work
        # is (relabel.stamped.set_aside_stale); the training splits of the new build are the same bytes as long as
        # GENERATOR_VERSION is (world_config.py), so the annotator, stores and checkpoints made from it stay valid.
        from relabel.records import config_hash
        from relabel.stamped import set_aside_stale
        made = config_hash(json.loads((final / "world.json").read_text()))
        set_aside_stale(final, made, False, f"was built by earlier code ({_differences(final, seed, cfg)})", say=log)
    elif final.exists():
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


def _write_independent(dest: Path, seed: int, cfg: WorldConfig) -> tuple[dict, dict]:
    """The splits that read no other split (extra, bgc, finegrained, coco): their (counts, seconds)."""
    sources = load_sources()
    counts, times = {}, {}
    t = time.perf_counter()
    counts["extra"] = write_scene_folder(dest, "extra", seed, cfg, sources, cfg.n_extra, "fit", True)[1]
    times["extra"] = round(time.perf_counter() - t, 2)
    for name, write in (("bgc", write_bgc), ("finegrained", write_finegrained), ("coco", write_coco)):
        t = time.perf_counter()
        counts[name] = write(dest, seed, cfg, sources)
        times[name] = round(time.perf_counter() - t, 2)
    return counts, times


def _fig2(boxes: list, sizes: list) -> tuple[dict, dict]:
    """Fig. 2's crop statistics of val (torchvision's get_params per crop: 2 M crops at 20,000 images)."""
    t = time.perf_counter()
    stats = crop_iou_stats(boxes, sizes, n_crops=100, seed=_FIG2_SEED)
    return stats, {"fig2": round(time.perf_counter() - t, 2)}


def _write_imagenet_a(dest: Path, seed: int, cfg: WorldConfig, reference: ReferenceClassifier) -> tuple[dict, dict]:
    t = time.perf_counter()
    counts = write_imagenet_a(dest, seed, cfg, load_sources(), reference)
    return counts, {"imagenet_a": round(time.perf_counter() - t, 2)}


class _Now:
    """A task run here at once, with a future's `result()` (the sequential build)."""

    def __init__(self, fn, *args):
        self.value = fn(*args)

    def result(self):
        return self.value


def build_world(dest: Path, seed: int, cfg: WorldConfig, parallel: bool | None = None) -> dict:
    """Write every split of the world into ``dest`` and return its statistics (also saved as stats.json).

    `parallel` (default: on a multi-core machine, for a world of at least 5,000 train + extra images) runs in a
    second process, in order, the splits that read no other split, then Fig. 2's statistics once val is written
    and ImageNet-A once its reference classifier is fitted, while this process writes train, val and V2 (the
    default world: ~3 min of each process's time); the files are the same either way, since every split draws from
    its own seeded generators."""
    sources = load_sources()
    dest.mkdir(parents=True, exist_ok=True)
    times, counts = {}, {}
    if parallel is None:
        parallel = (os.cpu_count() or 1) > 1 and cfg.n_train + cfg.n_extra >= _PARALLEL_MIN_IMAGES
    pool = None
    if parallel:
        import concurrent.futures as cf
        import multiprocessing as mp
        pool = cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"))
    later = pool.submit if pool is not None else _Now  # the helper's tasks run in submission order

    def timed(name, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        times[name] = round(time.perf_counter() - t, 2)
        return out

    try:
        independent = later(_write_independent, dest, seed, cfg)
        # ImageNet-A's filter model is trained on a different split (train) than the one it filters.
        ref_train, counts["train"] = timed("train", write_scene_folder, dest, "train", seed, cfg, sources,
                                           cfg.n_train, "fit", False, 2000)
        if len({s.label for s in ref_train}) < 2:
            raise ValueError("n_train must give at least two classes to train the ImageNet-A reference classifier.")
        val, val_info = timed("val", write_val, dest, seed, cfg, sources)
        counts["val"] = val_info["counts"]
        # Calibration targets (world_config.py): ReaL multi-label fraction and Fig. 2 crops against the labelled
        # class's boxes, as ImageNet's val boxes annotate only the labelled class.
        multilabel = multilabel_fraction(true_labels(s, cfg.visibility_threshold) for s in val)
        fig2 = later(_fig2, [s.boxes_of(s.label) for s in val], [(s.image.shape[1], s.image.shape[0]) for s in val])
        del val
        reference = timed("reference", ReferenceClassifier, [s.image for s in ref_train], [s.label for s in ref_train])
        del ref_train
        imagenet_a = later(_write_imagenet_a, dest, seed, cfg, reference)
        counts["v2"] = timed("v2", write_v2, dest, seed, cfg, sources, val_info["selection_frequency"])
        for task in (independent, imagenet_a):
            more, more_times = task.result()
            counts.update(more if task is independent else {"imagenet_a": more})
            times.update(more_times)
        fig2, fig2_time = fig2.result()
        times.update(fig2_time)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    order = ("train", "extra", "val", "v2", "imagenet_a", "bgc", "coco", "finegrained")  # stats.json's key order
    counts = {k: counts[k] for k in order}

    stats = {
        "generator_version": GENERATOR_VERSION, "test_sets_version": TEST_SETS_VERSION, "seed": seed,
        "config": cfg.to_dict(),
        "classes": list(CLASS_NAMES), "counts": counts,
        "val_multilabel": multilabel, "paper_real_multilabel": PAPER_REAL_MULTILABEL,
        "fig2_val_labelled_boxes": fig2, "paper_fig2": PAPER_FIG2,
    }
    write_json(dest / "stats.json", stats)
    # Timings vary from run to run, so they stay out of the world's files (byte-identical per seed).
    write_json(dest / "world.json", world_identity(seed, cfg))
    stats["build_seconds"] = times
    return stats


def training_split_hashes(world: str | Path) -> dict:
    """{split: {"files": n, "sha256": ...}} for every split training reads (world_config.TRAINING_SPLITS): a
    sha256 over each file's path (relative to the world) and sha256, so two worlds whose training sides are
    bit-identical give the same dict (tests/test_miniworld.py compares the default world's with the committed one)."""
    import hashlib
    world = Path(world)
    out = {}
    for split in TRAINING_SPLITS:
        path = world / split
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.relative_to(world).as_posix()}\t{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
        out[split] = {"files": len(files), "sha256": h.hexdigest()}
    return out


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

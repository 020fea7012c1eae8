"""A tiny fake full-scale data tree in the real on-disk layouts, so `--scale full` runs end to end on a CPU.

    python -m relabel.data.fakefull --out /tmp/fakefull        # builds it, prints `export` lines to paste
    eval "$(python -m relabel.data.fakefull --out /tmp/fakefull)"
    env = make_fake_full("/tmp/fakefull")                       # the same, as {"IMAGENET_ROOT": ..., ...}

Every path is where the real release unpacks it (docs/references.md); only the images are fake: a class-coloured,
class-oriented striped ellipse on a class-independent background, 64-96 px (IN-9: 224 px), so a model can learn
something in a few steps. Defaults: 5 real wnids, ImageNet indices 0, 1, 22, 207, 980 (index != sorted position
among the folders; '207' < '22' as strings, the ImageNetV2 pitfall; three of them are ImageNet-A classes).

    <root>/imagenet/                                          IMAGENET_ROOT, also the evaluators' --data-root
        train/<wnid>/<wnid>_<n>.JPEG
        val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG            indices whose ReaL set (timm's real.json) holds wnid
        imagenetv2/imagenetv2-{top-images,matched-frequency,threshold0.7}-format-val/<class index>/<sha1>.jpeg
        imagenet-a/<wnid>/<score>_<lemma> _ <lemma>_<conf>.jpg   the tree's classes among ImageNet-A's 200
        imagenet-c/<corruption>/<1..5>/<wnid>/ILSVRC2012_val_*.JPEG   val crops + noise growing with severity
        bg_challenge/<variant>/val/<NN_class>/*.JPEG, bg_challenge/fg_mask/val/<NN_class>/*.npy, in_to_in9.json
        shankar/human_accuracy_v3.0.0.json
    <root>/imagenet_efficientnet_l2_sz475_top5/<wnid>/<wnid>_<n>.pt   RELABEL_OFFICIAL_MAPS, one per train image
    <root>/fnames_clean.txt                                   RELABEL_CLEAN_LIST (Beyer et al.: kept train files)
    <root>/bbox_val/val/ILSVRC2012_val_<8 digits>.xml         IMAGENET_VAL_BOXES (PASCAL VOC, as the tgz unpacks)
    <root>/imagenet21k/<wnid>/<wnid>_<n>.JPEG                 IMAGENET21K_ROOT (wnids outside the 1k)
    <root>/coco/{train2017,val2017}/<12 digits>.jpg, coco/annotations/instances_{train,val}2017.json   COCO_ROOT

The official maps are `torch.save`d float32 [2, 5, 15, 15] tensors (row 0: raw top-5 scores, best first; row 1:
their ImageNet class indices as floats), height-first like the annotator's [C, H, W] output, computed from the
image's own mask: the image's class is top-1 where the object covers a cell, another tree class elsewhere.
`in_to_in9.json` has the release's format (all 1000 indices, -1 outside IN-9) with class ranges written here from
the WordNet groups, not copied from the release. The tree is deterministic in (seed, sizes), built in a temporary
sibling folder and renamed into place, stamped with its parameters in `fakefull.json`; asking again for the same
tree reuses it, a different one replaces a tree this module made, and any other non-empty folder is refused.
"""
from __future__ import annotations

import argparse
import colorsys
import hashlib
import io
import json
import os
import shlex
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from relabel.data.formats import split_rng
from relabel.evaluators.bgc import IN9_VARIANTS
from relabel.evaluators.roots import V2_VARIANTS, timm_info

__all__ = ["make_fake_full", "CLASS_INDICES", "FakeTreeError", "main"]

VERSION = 1  # bump when the generated files change
STAMP = "fakefull.json"
# ImageNet indices of the tree's classes, in the order `classes=n` takes them: tench, goldfish, bald eagle,
# golden retriever, volcano, hummingbird, bee, acoustic guitar, sports car, orangutan.
CLASS_INDICES = (0, 1, 22, 207, 980, 94, 309, 402, 817, 365)
IN9_CLASSES = ("00_dog", "01_bird", "02_wheeled vehicle", "03_reptile", "04_carnivore", "05_insect",
               "06_musical instrument", "07_primate", "08_fish")
# ImageNet index ranges per IN-9 class (WordNet groups; the format of backgrounds_challenge's in_to_in9.json).
_IN9_RANGES = {0: [(151, 268)], 1: [(7, 24), (80, 100), (127, 146)], 3: [(33, 68)], 4: [(269, 299)],
               5: [(300, 319)], 7: [(365, 382)], 8: [(0, 6), (389, 397)],
               2: [(i, i) for i in (407, 436, 444, 468, 511, 609, 627, 656, 661, 671, 717, 751, 817, 864, 867)],
               6: [(i, i) for i in (401, 402, 420, 486, 513, 541, 546, 558, 566, 579, 593, 594, 641, 642, 683,
                                    684, 687, 699, 776, 822, 875, 881, 889)]}
COCO_USED_IDS = (1, 3, 18, 44, 62, 90)  # person, car, dog, bottle, chair, toothbrush: ids with COCO's gaps
GRID = 15  # the official maps' grid (475 px / stride 32)


class FakeTreeError(ValueError):
    """A bad size or output folder for the fake tree; the message says what to change."""


def _sizes(**kw) -> dict:
    sizes = dict(seed=0, classes=5, train_per_class=6, val_per_class=2, v2_per_class=2, a_per_class=2,
                 c_per_class=1, c_corruptions=None, bgc_per_class=2, bgc_size=224, extra_classes=3,
                 extra_per_class=4, coco_train=8, coco_val=4, min_px=64, max_px=96)
    unknown = sorted(set(kw) - set(sizes))
    if unknown:
        raise FakeTreeError(f"unknown fake-tree size(s) {unknown}; valid: {sorted(sizes)}.")
    sizes.update(kw)
    from relabel.metrics import CORRUPTIONS
    sizes["c_corruptions"] = list(CORRUPTIONS if sizes["c_corruptions"] is None else sizes["c_corruptions"])
    bad = [c for c in sizes["c_corruptions"] if c not in CORRUPTIONS]
    if bad:
        raise FakeTreeError(f"unknown ImageNet-C corruption(s) {bad}; choose from {', '.join(CORRUPTIONS)}.")
    if not 1 <= sizes["classes"] <= len(CLASS_INDICES):
        raise FakeTreeError(f"classes must be 1..{len(CLASS_INDICES)}, got {sizes['classes']}.")
    for k, v in sizes.items():
        if k not in ("seed", "c_corruptions") and (not isinstance(v, int) or v < 0):
            raise FakeTreeError(f"{k} must be a whole number >= 0, got {v!r}.")
    if not 16 <= sizes["min_px"] <= sizes["max_px"] or sizes["bgc_size"] < 16:
        raise FakeTreeError(f"image sides need 16 <= min_px <= max_px and bgc_size >= 16, got "
                            f"{sizes['min_px']}, {sizes['max_px']}, {sizes['bgc_size']}.")
    if sizes["c_per_class"] > sizes["val_per_class"] or sizes["train_per_class"] < 1 or sizes["val_per_class"] < 1:
        raise FakeTreeError("the tree needs train_per_class >= 1 and val_per_class >= max(1, c_per_class) "
                            "(ImageNet-C is made from val).")
    return sizes


def _env(root: Path) -> dict:
    return {"IMAGENET_ROOT": str(root / "imagenet"),
            "RELABEL_OFFICIAL_MAPS": str(root / "imagenet_efficientnet_l2_sz475_top5"),
            "RELABEL_CLEAN_LIST": str(root / "fnames_clean.txt"),
            "IMAGENET_VAL_BOXES": str(root / "bbox_val" / "val"),
            "IMAGENET21K_ROOT": str(root / "imagenet21k"),
            "COCO_ROOT": str(root / "coco")}


def make_fake_full(root: str | os.PathLike, **sizes) -> dict:
    """Builds (or reuses) the fake tree at `root` and returns the environment variables that point the full-scale
    configs at it (IMAGENET_ROOT, RELABEL_OFFICIAL_MAPS, RELABEL_CLEAN_LIST, IMAGENET_VAL_BOXES, IMAGENET21K_ROOT,
    COCO_ROOT). `sizes`: seed, classes, {train,val,v2,a,c,bgc,extra}_per_class, c_corruptions, bgc_size,
    extra_classes, coco_train, coco_val, min_px, max_px (see `_sizes` for the defaults)."""
    sizes = _sizes(**sizes)
    root = Path(root).absolute()
    want = {"generator": "relabel.data.fakefull", "version": VERSION, "sizes": sizes}
    if _stamp(root) == want:
        return _env(root)
    if root.exists() and (not root.is_dir() or (any(root.iterdir()) and _stamp(root) is None)):
        raise FakeTreeError(f"{root} exists and is not a fake tree made by relabel.data.fakefull; pass a new or "
                            f"empty folder.")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".tmp-{root.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _build(tmp, sizes)
        (tmp / STAMP).write_text(json.dumps(want, indent=1, sort_keys=True) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if _stamp(root) is not None:  # another tree of ours: set it aside, then delete it once the new one is in place
        old = root.parent / f".stale-{root.name}-{os.getpid()}"
        os.rename(root, old)
        os.rename(tmp, root)
        shutil.rmtree(old)
        return _env(root)
    try:
        os.rename(tmp, root)  # replaces an empty folder; fails if another process put its tree there first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if _stamp(root) != want:
            raise
    return _env(root)


def _stamp(root: Path) -> dict | None:
    try:
        return json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------- images

def _pattern(key: int, n: int) -> tuple[np.ndarray, float, float]:
    """Class `key` of `n`: colour (RGB in [0, 1]), stripe angle and relative period, spread so classes differ."""
    rgb = np.array(colorsys.hsv_to_rgb(key / max(n, 1), 0.85, 0.95), dtype=np.float32)
    return rgb, float(np.pi * ((key * 0.618034) % 1.0)), 0.08 + 0.04 * (key % 3)


def _scene(rng: np.random.Generator, key: int, n: int, size: tuple[int, int]) -> dict:
    """One fake photo: a striped ellipse of class `key` on a smooth noisy background. Returns uint8 `image`,
    `background` and `foreground` (H×W×3), the bool `mask` and the object's `box` (x0, y0, x1, y1), x along width."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base, tilt = rng.uniform(0.25, 0.6, 3), rng.uniform(-0.3, 0.3, 3)
    bg = base + tilt * (x / w)[..., None] + rng.normal(0, 0.04, (h, w, 3))
    cx, cy = rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h
    rx, ry = rng.uniform(0.22, 0.38) * w, rng.uniform(0.22, 0.38) * h
    mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    rgb, angle, period = _pattern(key, n)
    phase = (x * np.cos(angle) + y * np.sin(angle)) / (period * min(w, h))
    fg = rgb * (0.55 + 0.45 * np.sin(2 * np.pi * phase + rng.uniform(0, 2 * np.pi)))[..., None]
    fg = fg + rng.normal(0, 0.03, (h, w, 3))
    u8 = lambda a: np.clip(a * 255 + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    box = (max(0, int(cx - rx)), max(0, int(cy - ry)), min(w, int(np.ceil(cx + rx))), min(h, int(np.ceil(cy + ry))))
    return {"image": u8(np.where(mask[..., None], fg, bg)), "background": u8(bg), "foreground": u8(fg),
            "mask": mask, "box": box}


def _size(rng: np.random.Generator, s: dict) -> tuple[int, int]:
    return int(rng.integers(s["min_px"], s["max_px"] + 1)), int(rng.integers(s["min_px"], s["max_px"] + 1))


def _jpeg(path: Path, image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    try:
        path.write_bytes(buf.getvalue())
    except FileNotFoundError:  # the first file of its folder (hundreds of files share a few folders)
        path.parent.mkdir(parents=True)
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _official_map(rng: np.random.Generator, mask: np.ndarray, label: int, other: int) -> np.ndarray:
    """[2, 5, 15, 15] float32: the image's class on top where its object covers a cell, `other` elsewhere, three
    random ImageNet classes below; raw scores (pre-softmax), best first, as the official release stores them."""
    cover = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((GRID, GRID), Image.BOX),
                       dtype=np.float32) / 255.0
    rest = [c for c in rng.choice(1000, 6, replace=False).tolist() if c not in (label, other)][:3]
    cand = np.array([label, other, *rest], dtype=np.float32)
    noise = rng.normal(0, 0.3, (5, GRID, GRID))
    scores = np.stack([1 + 8 * cover, 1 + 4 * (1 - cover), *rng.uniform(-2, 0.5, (3, GRID, GRID))]) + noise
    order = np.argsort(-scores, axis=0, kind="stable")
    return np.stack([np.take_along_axis(scores, order, 0), cand[order]]).astype(np.float32)


# ---------------------------------------------------------------------------------------------------- splits

def _build(dest: Path, s: dict) -> None:
    import torch
    synsets = timm_info("imagenet_synsets.txt").read_text().split()
    lemma = dict(line.split("\t", 1) for line in timm_info("imagenet_synset_to_lemma.txt").read_text().splitlines()
                 if "\t" in line)
    indices = sorted(CLASS_INDICES[:s["classes"]])
    wnids = [synsets[i] for i in indices]
    n = len(indices)
    seed = s["seed"]
    inet = dest / "imagenet"

    # train + the official maps + the clean list
    official, clean = dest / "imagenet_efficientnet_l2_sz475_top5", []
    for k, (idx, wnid) in enumerate(zip(indices, wnids)):
        ids = np.sort(split_rng(seed, f"train-ids-{wnid}", 0).choice(np.arange(1, 15000), s["train_per_class"],
                                                                        replace=False))
        for j, num in enumerate(ids.tolist()):
            rng = split_rng(seed, f"train-{wnid}", j)
            sc = _scene(rng, k, n, _size(rng, s))
            name = f"{wnid}_{num}"
            _jpeg(inet / "train" / wnid / f"{name}.JPEG", sc["image"])
            other = indices[(k + 1 + int(rng.integers(max(n - 1, 1)))) % n] if n > 1 else (idx + 1) % 1000
            (official / wnid).mkdir(parents=True, exist_ok=True)
            torch.save(torch.from_numpy(_official_map(rng, sc["mask"], idx, other)), official / wnid / f"{name}.pt")
            if j % 3 != 2:  # Beyer et al. keep most training images
                clean.append(f"{name}.JPEG")
    (dest / "fnames_clean.txt").write_text("\n".join(clean) + "\n")

    # val: file indices whose ReaL label set holds the class, so val, ReaL and Shankar agree
    real = json.loads(timm_info("imagenet_real_labels.json").read_text())
    used, val = set(), []  # val: (val index, class position, scene)
    for k, idx in enumerate(indices):
        cands = [i + 1 for i, labels in enumerate(real) if idx in labels and i + 1 not in used]
        pick = sorted(split_rng(seed, f"val-ids-{idx}", 0).choice(cands, s["val_per_class"], replace=False).tolist())
        used.update(pick)
        for i in pick:
            rng = split_rng(seed, "val", i)
            val.append((i, k, _scene(rng, k, n, _size(rng, s))))
    shankar = {"initial_annots": {}, "problematic_images": {}, "imagenet_m": []}
    for j, (i, k, sc) in enumerate(val):
        name = f"ILSVRC2012_val_{i:08d}"
        _jpeg(inet / "val" / wnids[k] / f"{name}.JPEG", sc["image"])
        _voc(dest / "bbox_val" / "val" / f"{name}.xml", name, sc["image"].shape, wnids[k], sc["box"])
        wrong = [wnids[(k + 1) % n]] if n > 1 and indices[(k + 1) % n] not in real[i - 1] else []
        shankar["initial_annots"][f"{name}.JPEG"] = {"correct": [synsets[c] for c in real[i - 1]], "unclear": [],
                                                    "wrong": wrong}
    shankar["problematic_images"][f"ILSVRC2012_val_{val[-1][0]:08d}.JPEG"] = {"reason": "fake: problematic"}
    shankar["imagenet_m"].append(f"ILSVRC2012_val_{val[0][0]:08d}.JPEG")
    shankar["initial_annots"][f"{wnids[0]}_1.JPEG"] = {"correct": [wnids[0]], "unclear": [], "wrong": []}  # not val
    (inet / "shankar").mkdir(parents=True)
    (inet / "shankar" / "human_accuracy_v3.0.0.json").write_text(json.dumps(shankar, indent=1))

    # ImageNet-C from the val images: Resize + CenterCrop to a square, Gaussian noise growing with severity
    for c in s["c_corruptions"]:
        for sev in range(1, 6):
            for j, (i, k, sc) in enumerate(val):
                if sum(1 for _, kk, _ in val[:j] if kk == k) >= s["c_per_class"]:
                    continue
                im = sc["image"]
                side = min(im.shape[:2])
                y0, x0 = (im.shape[0] - side) // 2, (im.shape[1] - side) // 2
                rng = split_rng(seed, f"c-{c}-{sev}", i)
                crop = im[y0:y0 + side, x0:x0 + side].astype(np.float32) + rng.normal(0, 8 * sev, (side, side, 3))
                _jpeg(inet / "imagenet-c" / c / str(sev) / wnids[k] / f"ILSVRC2012_val_{i:08d}.JPEG",
                      np.clip(crop, 0, 255).astype(np.uint8))

    # ImageNetV2: label = int(folder), file = sha1 of the bytes
    for v in V2_VARIANTS:
        for k, idx in enumerate(indices):
            for j in range(s["v2_per_class"]):
                rng = split_rng(seed, f"v2-{v}-{idx}", j)
                tmp = inet / "imagenetv2" / f"imagenetv2-{v}-format-val" / str(idx) / ".tmp.jpeg"
                data = _jpeg(tmp, _scene(rng, k, n, _size(rng, s))["image"])
                tmp.rename(tmp.with_name(f"{hashlib.sha1(data).hexdigest()}.jpeg"))

    # ImageNet-A: the tree's classes among the 200, file names as the release's (with spaces)
    a_synsets = set(timm_info("imagenet_a_synsets.txt").read_text().split())
    for k, (idx, wnid) in enumerate(zip(indices, wnids)):
        if wnid not in a_synsets:
            continue
        word = lemma.get(wnid, wnid).split(",")[0].replace("/", " ")
        for j in range(s["a_per_class"]):
            rng = split_rng(seed, f"a-{wnid}", j)
            _jpeg(inet / "imagenet-a" / wnid / f"{rng.uniform():.6f}_{word} _ {word}_{rng.uniform():.6f}.jpg",
                  _scene(rng, k, n, _size(rng, s))["image"])

    _write_bgc(inet / "bg_challenge", s)
    _write_extra(dest / "imagenet21k", synsets, n, s)
    _write_coco(dest / "coco", s)


def _voc(path: Path, name: str, shape, wnid: str, box) -> None:
    """ImageNet's val box XML (PASCAL VOC; 1-based inclusive pixel coordinates)."""
    a = ET.Element("annotation")
    ET.SubElement(a, "folder").text = "val"
    ET.SubElement(a, "filename").text = name
    ET.SubElement(ET.SubElement(a, "source"), "database").text = "ILSVRC_2012"
    size = ET.SubElement(a, "size")
    for tag, v in (("width", shape[1]), ("height", shape[0]), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(a, "segmented").text = "0"
    obj = ET.SubElement(a, "object")
    for tag, v in (("name", wnid), ("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
        ET.SubElement(obj, tag).text = v
    bb = ET.SubElement(obj, "bndbox")
    for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (box[0] + 1, box[1] + 1, box[2], box[3])):
        ET.SubElement(bb, tag).text = str(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(a).write(path, encoding="utf-8")


def _write_bgc(root: Path, s: dict) -> None:
    """IN-9 (Xiao et al.): the 8 variants of each foreground, its mask, and the 1000 → 9 class map."""
    table = {str(i): -1 for i in range(1000)}
    for c, ranges in _IN9_RANGES.items():
        for lo, hi in ranges:
            table.update({str(i): c for i in range(lo, hi + 1)})
    root.mkdir(parents=True)
    (root / "in_to_in9.json").write_text(json.dumps(table))
    size = (s["bgc_size"], s["bgc_size"])
    scenes = {(c, j): _scene(split_rng(s["seed"], f"in9-{c}", j), c, 9, size)
              for c in range(9) for j in range(s["bgc_per_class"])}
    rand = split_rng(s["seed"], "in9-rand", 0)
    keys = sorted(scenes)
    for (c, j), sc in scenes.items():
        cls, stem = IN9_CLASSES[c], f"n{c:08d}_{j + 1}"
        m = sc["mask"][..., None]
        x0, y0, x1, y1 = sc["box"]
        boxed = np.zeros_like(m)
        boxed[y0:y1, x0:x1] = True
        black = np.zeros_like(sc["image"])
        same = scenes[(c, (j + 1) % s["bgc_per_class"])]["background"]
        other = scenes[keys[int(rand.integers(len(keys)))]]["background"]
        nxt = scenes[((c + 1) % 9, j)]["background"]
        images = {"original": sc["image"], "only_bg_b": np.where(boxed, black, sc["image"]),
                  "only_bg_t": sc["background"], "no_fg": np.where(m, black, sc["image"]),
                  "only_fg": np.where(m, sc["image"], black), "mixed_same": np.where(m, sc["image"], same),
                  "mixed_rand": np.where(m, sc["image"], other), "mixed_next": np.where(m, sc["image"], nxt)}
        for v in IN9_VARIANTS:
            _jpeg(root / v / "val" / cls / f"{stem}.JPEG", images[v])
        (root / "fg_mask" / "val" / cls).mkdir(parents=True, exist_ok=True)
        np.save(root / "fg_mask" / "val" / cls / f"{stem}.npy", sc["mask"].astype(np.uint8))


def _write_extra(root: Path, synsets: list[str], n: int, s: dict) -> None:
    """ImageNet-21K-like extra images: class folders of wnids outside the 1k, drawn like the tree's classes."""
    known = set(synsets)
    pool = [w for w in timm_info("imagenet21k_goog_synsets.txt").read_text().split() if w not in known]
    picked = sorted(split_rng(s["seed"], "extra-classes", 0).choice(pool, s["extra_classes"], replace=False))
    for e, wnid in enumerate(picked):
        for j in range(s["extra_per_class"]):
            rng = split_rng(s["seed"], f"extra-{wnid}", j)
            _jpeg(root / wnid / f"{wnid}_{j + 1}.JPEG", _scene(rng, e % n, n, _size(rng, s))["image"])
    root.mkdir(parents=True, exist_ok=True)


def _write_coco(root: Path, s: dict) -> None:
    """COCO 2017 layout with COCO's 80 categories (ids 1..90 with gaps); objects of a few of them, as polygons."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights
    names = FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]  # index = category id, "N/A" in the gaps
    categories = [{"id": i, "name": name} for i, name in enumerate(names) if i > 0 and name != "N/A"]
    ann_id = 0
    for split, count in (("train2017", s["coco_train"]), ("val2017", s["coco_val"])):
        ids = sorted(split_rng(s["seed"], f"coco-ids-{split}", 0).choice(np.arange(1, 581930), count,
                                                                       replace=False).tolist())
        images, anns = [], []
        for image_id in ids:
            rng = split_rng(s["seed"], f"coco-{split}", image_id)
            w, h = _size(rng, s)
            canvas = None
            for _ in range(int(rng.integers(1, 4))):
                key = int(rng.integers(len(COCO_USED_IDS)))
                sc = _scene(rng, key, len(COCO_USED_IDS), (w, h))
                canvas = sc["image"] if canvas is None else np.where(sc["mask"][..., None], sc["image"], canvas)
                x0, y0, x1, y1 = sc["box"]
                cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
                t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
                poly = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1).round(2)
                ann_id += 1
                anns.append({"id": ann_id, "image_id": image_id, "category_id": COCO_USED_IDS[key],
                             "segmentation": [poly.ravel().tolist()], "area": float(np.pi * rx * ry),
                             "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "iscrowd": 0})
            _jpeg(root / split / f"{image_id:012d}.jpg", canvas)
            images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": w, "height": h})
        doc = {"info": {"description": "fake COCO 2017 layout (relabel.data.fakefull)", "version": "1.0",
                        "year": 2017}, "licenses": [], "images": images, "annotations": anns,
               "categories": categories}
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))


# ---------------------------------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m relabel.data.fakefull", description=__doc__.split("\n\n")[0],
                                epilog="Prints `export` lines on stdout (paste them, or eval \"$(...)\"); a "
                                       "summary on stderr.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the tree (new, empty, or made by this)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", type=int, default=5, help=f"ImageNet classes, 1-{len(CLASS_INDICES)} (default 5)")
    p.add_argument("--train-per-class", type=int, default=6, metavar="N")
    p.add_argument("--val-per-class", type=int, default=2, metavar="N")
    p.add_argument("--c-corruptions", metavar="LIST", help="comma-separated ImageNet-C corruptions (default: the 15)")
    args = p.parse_args(argv)
    kw = dict(seed=args.seed, classes=args.classes, train_per_class=args.train_per_class,
              val_per_class=args.val_per_class)
    if args.c_corruptions:
        kw["c_corruptions"] = [c.strip() for c in args.c_corruptions.split(",") if c.strip()]
    start, before = time.perf_counter(), _stamp(Path(args.out))
    try:
        env = make_fake_full(args.out, **kw)
    except (FakeTreeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    how = "reused" if before is not None and before == _stamp(Path(args.out)) else \
        f"built in {time.perf_counter() - start:.1f} s"
    print(f"# fake full-scale tree at {Path(args.out).absolute()} ({how})", file=sys.stderr)
    for k, v in env.items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

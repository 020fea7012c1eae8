"""Table 10 pieces: mAP against scikit-learn, oracle maps from COCO masks, pooled BCE targets, BCE training."""
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from sklearn.metrics import average_precision_score

from multilabel_coco import config as C
from multilabel_coco import targets as T
from multilabel_coco.data import read_split
from multilabel_coco.metrics import average_precision, mean_average_precision
from multilabel_coco.oracle import build_oracle_store, oracle_map
from relabel import train as TR
from relabel.masks import area_weights, resize_masks
from relabel.data.formats import mask_polygons, rle_compressed, rle_uncompressed
from relabel.pooling import label_pool
from relabel.store import LabelMapStore


# ---- mAP --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_map_equals_scikit_learn_per_class_average(seed):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(5, 60)), int(rng.integers(2, 8))
    y = (rng.random((n, c)) < rng.uniform(0.1, 0.6)).astype(int)
    y[0] = 1  # every class has a positive
    # ties matter for AP: round the scores on odd seeds so many share a value
    s = rng.normal(size=(n, c))
    s = np.round(s, 1) if seed % 2 else s
    ours = mean_average_precision(y, s)
    ref = [average_precision_score(y[:, k], s[:, k]) for k in range(c)]
    assert ours["map"] == pytest.approx(100 * np.mean(ref), abs=1e-9)
    assert ours["ap"] == pytest.approx([100 * r for r in ref], abs=1e-9)
    assert average_precision(y[:, 0], s[:, 0]) == pytest.approx(ref[0], abs=1e-12)


def test_map_leaves_out_classes_without_positives_and_is_order_only():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.3], [0.1, 0.4]])
    out = mean_average_precision(y, s)
    assert out["classes_scored"] == 1 and out["classes_without_positives"] == 1 and out["ap"][1] is None
    assert out["map"] == pytest.approx(100 * average_precision_score(y[:, 0], s[:, 0]))  # (1 + 2/3) / 2
    assert out["map"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert mean_average_precision(y, 1 / (1 + np.exp(-s)))["map"] == pytest.approx(out["map"])  # logits or probs
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        mean_average_precision(np.zeros((3, 2)), np.zeros((3, 3)))


# ---- oracle maps ------------------------------------------------------------------------------------------------
def test_area_resize_is_exact_coverage():
    w = area_weights(16, 6)
    assert w.shape == (6, 16) and np.allclose(w.sum(1), 1.0)
    m = np.zeros((1, 12, 16), np.uint8)
    m[0, :6, :8] = 1  # the top-left quarter
    cov = resize_masks(m, (6, 4))
    assert np.allclose(cov[0, :3, :2], 1.0) and np.allclose(cov[0, 3:], 0.0) and np.allclose(cov[0, :, 2:], 0.0)
    assert cov.mean() == pytest.approx(m.mean())  # area is preserved at any grid
    assert resize_masks(m, (5, 7)).mean() == pytest.approx(m.mean())


def _quarter_map(grid=6):
    """A 12×12 image whose class 1 covers the top-left quarter; class 0 nothing; as a k=2 map on `grid`."""
    m = np.zeros((2, 12, 12), np.uint8)
    m[1, :6, :6] = 1
    cov = torch.from_numpy(resize_masks(m, (grid, grid)))[None]
    return cov, torch.arange(2)[None, :, None, None].expand(1, 2, grid, grid)


# (crop box x1, y1, x2, y2) → expected pooled fraction of the crop covered by class 1, and overlap coefficient
CROPS = {"inside": ((0.0, 0.0, 0.5, 0.5), 1.0, 1.0), "outside": ((0.5, 0.5, 1.0, 1.0), 0.0, 0.0),
         "overlapping": ((0.25, 0.25, 0.75, 0.75), 0.25, 0.25), "whole image": ((0.0, 0.0, 1.0, 1.0), 0.25, 1.0),
         "holds the object": ((0.0, 0.0, 0.75, 0.75), 0.25 / 0.5625, 1.0)}


@pytest.mark.parametrize("name", CROPS)
def test_oracle_map_pools_to_the_expected_fraction(name):
    box, fraction, overlap = CROPS[name]
    scores, idx = _quarter_map()
    b = torch.tensor([box])
    pooled = label_pool(scores, idx, b, 2)[0]
    tol = 0.05 if name == "holds the object" else 1e-5  # RoIAlign interpolates across the object's edge there
    assert pooled[1].item() == pytest.approx(fraction, abs=tol) and pooled[0].item() == 0.0
    assert T.fraction_target(scores, idx, b, 2)[0, 1].item() == pytest.approx(fraction, abs=tol)
    assert T.overlap_target(scores, idx, b, 2)[0, 1].item() == pytest.approx(overlap, abs=tol)
    assert T.overlap_target(scores, idx, b, 2)[0, 0].item() == 0.0  # an absent class stays 0


def _coco(tmp: Path, masks_per_image, encodings, size=(12, 16)):
    """A COCO instances file + PNGs; masks_per_image[i] = [(category id, HxW mask)], encoded per `encodings`."""
    h, w = size
    images, anns = [], []
    (tmp / "img").mkdir(parents=True, exist_ok=True)
    for i, objs in enumerate(masks_per_image):
        Image.fromarray(np.full((h, w, 3), (40 * i) % 256, np.uint8)).save(tmp / "img" / f"{i:03d}.png")
        images.append({"id": i + 1, "file_name": f"{i:03d}.png", "height": h, "width": w})
        for j, (cat, m) in enumerate(objs):
            enc = encodings[(i + j) % len(encodings)]
            seg = {"polygon": lambda: mask_polygons(m), "rle": lambda: rle_uncompressed(m),
                   "compressed": lambda: rle_compressed(m)}[enc]()
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "iscrowd": 0,
                         "area": int(m.sum()), "bbox": [0, 0, w, h], "segmentation": seg})
    cats = [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}, {"id": 4, "name": "c"}]  # ids are not columns
    path = tmp / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return tmp / "img", path


def _blob(h=12, w=16):
    m = np.zeros((h, w), np.uint8)
    m[2:8, 3:9] = 1
    m[5:10, 8:12] = 1  # one hole-free component: representable as a polygon
    return m


def test_polygon_and_rle_masks_give_the_same_map(tmp_path):
    m = _blob()
    assert mask_polygons(m) is not None
    maps = []
    for enc in ("polygon", "rle", "compressed"):
        _, ann = _coco(tmp_path / enc, [[(3, m)]], [enc])
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann))
        assert coco.annToMask(coco.anns[1]).sum() == m.sum()
        maps.append(oracle_map(coco, 1, [1, 3, 4], (6, 6)))
    assert np.allclose(maps[0], maps[1]) and np.allclose(maps[0], maps[2])
    assert maps[0][1].mean() == pytest.approx(m.mean()) and not maps[0][[0, 2]].any()


def test_oracle_store_holds_the_union_of_instances_per_class(tmp_path):
    a, b = np.zeros((12, 16), np.uint8), np.zeros((12, 16), np.uint8)
    a[:6, :8] = 1
    b[4:, 6:] = 1  # a second instance of the same class, overlapping the first
    images, ann = _coco(tmp_path, [[(1, a), (1, b), (4, _blob())], [(3, b)], []], ["polygon", "rle"])
    split = read_split(images, ann)
    assert split.cat_ids == (1, 3, 4) and split.targets.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    store = build_oracle_store(split, tmp_path / "store", grid=(4, 4), k=2, log=lambda m: None)
    assert isinstance(store, LabelMapStore) and store.meta.grid == (4, 4) and store.meta.k == 2
    s, idx = store.read_batch(store.rows(["000.png"]))
    dense = torch.zeros(1, 3, 4, 4).scatter_add_(1, idx, s)[0].numpy()
    union = np.maximum(a, b)
    assert np.allclose(dense[0], resize_masks(union[None], (4, 4))[0], atol=1e-6)  # no double counting
    assert dense[0].max() == pytest.approx(1.0) and dense[1].max() == 0.0
    stats = json.loads((tmp_path / "store" / "annotation.json").read_text())
    assert stats["dropped_coverage_fraction"] == 0.0  # at most two classes per image, k = 2
    # a finished store is reopened, not rebuilt
    assert build_oracle_store(split, tmp_path / "store", grid=(4, 4), k=2, log=lambda m: None).meta.complete


# ---- machine targets ----------------------------------------------------------------------------------------------
def test_sigmoid_target_is_sigmoid_of_pooled_logits_and_unstored_classes_count_as_the_floor():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 5, generator=g) * 3
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.6, 0.9], [0.5, 0.0, 1.0, 0.5]])
    full_idx = torch.arange(4)[None, :, None, None].expand(3, 4, 5, 5)
    ref = torch.sigmoid(label_pool(logits, full_idx, boxes, 4))
    assert torch.allclose(T.sigmoid_target(logits, full_idx, boxes, 4), ref, atol=1e-6)  # k = C: exact
    top = logits.topk(2, dim=1)
    floor = top.values.flatten(1).amin(1)
    # the rule's reading of a top-2 map: stored entries as they are, every other class at the image's floor
    dense = torch.where(torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top.indices, True), logits,
                        floor[:, None, None, None].expand_as(logits))
    got = T.sigmoid_target(top.values, top.indices, boxes, 4)
    assert torch.allclose(got, torch.sigmoid(label_pool(dense, full_idx, boxes, 4)), atol=1e-5)
    assert (got > 0).all() and (got < 1).all()


# ---- the trainer with BCE -----------------------------------------------------------------------------------------
TINY = dict(model="resnet18", model_kwargs={"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8},
            num_classes=3, input_size=16, epochs=1, batch_size=4, lr=0.01, warmup_epochs=0.0, ckpt_every=10,
            color_jitter=0.0, hflip=0.0, optimizer="adamp", loss="bce")


@pytest.mark.parametrize("row", ["baseline", "oracle"])
def test_bce_training_on_multihot_and_on_pooled_oracle_targets(tmp_path, row):
    images, ann = _coco(tmp_path, [[(1, _blob())], [(3, _blob()), (4, _blob()[::-1])]] * 4, ["polygon", "rle"])
    split = read_split(images, ann)
    store = build_oracle_store(split, tmp_path / "store", grid=(3, 3), k=2, log=lambda m: None) if row == "oracle" \
        else None
    over = C.ROWS[row]
    cfg = TR.TrainConfig(**TINY).replace(**over)
    from relabel.loader import TrainSet
    ds = TrainSet(split.root, split.samples(), TR.train_transform_for(cfg), 0,
                  rows=store.rows(list(split.paths)) if store else None)
    res = TR.train(cfg, ds, tmp_path / "wd", store=store, progress=False)
    assert res.steps == 2 and all(torch.isfinite(p).all() for p in res.model.parameters())
    if store is not None:  # what the loader hands the loss: per-class targets in [0, 1], not a distribution
        _, boxes, _, labels, rows, target = TR.LabelPoolingCollate(store, 3, "ml_overlap")([ds[i] for i in range(4)])
        assert labels.shape == (4, 3)  # multi-hot labels batch as [B, C]
        assert torch.equal(target, T.overlap_target(*store.read_batch(rows.numpy()), boxes, 3))
        assert target.shape == (4, 3) and (target >= 0).all() and (target <= 1).all()


def test_loss_option_is_checked_and_default_configs_keep_their_hash():
    with pytest.raises(ValueError, match="loss must be one of"):
        TR.TrainConfig(loss="mse")
    assert "loss" not in TR.TrainConfig().to_dict()  # earlier runs' checkpoints and hashes still match
    assert TR.TrainConfig(loss="bce").to_dict()["loss"] == "bce"
    assert set(T.RULES) <= set(TR.POOLED_TARGET_RULES)


# ---- configs and registration ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["mini", "full"])
def test_configs_for_every_cell(scale):
    for arch in C.ARCHS:
        for row in C.ROWS:
            cfg = C.get_config(scale, arch, row, seed=2)
            assert cfg.train.loss == "bce" and cfg.train.seed == 2 and cfg.train.label == C.ROWS[row]["label"]
    full = C.get_config("full", "resnet101", "oracle")
    assert (full.train.optimizer, full.train.lr, full.train.weight_decay, full.train.batch_size) == ("adamp", 2e-4,
                                                                                                     0.01, 128)
    assert full.train.input_size == 448 and C.get_config("full", "resnet50").train.input_size == 224
    with pytest.raises(ValueError, match="unknown MultiLabelConfig option"):
        C.get_config(scale, "resnet50", "baseline", map_gird=(3, 3))
    with pytest.raises(ValueError, match="row must be one of"):
        C.get_config(scale, "resnet50", "teacher")


def test_table10_cells_are_registered_experiments():
    from relabel import launch
    from results import tables
    registry = launch.discover()
    for row in tables.get("table10").rows:
        for src in row.sources:
            assert src.experiment in registry and src.evaluator in registry[src.experiment].evaluators
            assert src.metric == "map"


def test_table10_records_go_stale_when_the_init_or_the_annotator_recipe_changes(monkeypatch):
    """A Table 10 record stores the recipe hashes of its init backbone and (machine row) of the annotator's init,
    so retraining either makes `make table10` run the cell again instead of keeping numbers of old weights."""
    from relabel import launch
    registry = dict(launch.discover())
    cur = {(a, r): registry[f"multilabel_coco/{a}/{r}"].recipe("mini", 0) for a in C.ARCHS for r in C.ROWS}
    assert not any(str(C.mini_world()) in json.dumps(v) for v in cur.values())  # no local paths: stays current elsewhere
    for exp in ("pretrain/resnet50/original", "annotator/default"):
        old = registry[exp]
        registry[exp] = launch.Experiment(old.id, old.evaluators, old.run, recipe=lambda s, seed, o=old: {
            **o.recipe(s, seed), "epochs": 999})
        monkeypatch.setattr(launch, "discover", lambda: dict(registry))
        changed = {k for k in cur if registry[f"multilabel_coco/{k[0]}/{k[1]}"].recipe("mini", 0) != cur[k]}
        want = ({("resnet50", r) for r in C.ROWS} if exp.startswith("pretrain")
                else {(a, "machine") for a in C.ARCHS})
        assert changed == want, exp
        registry[exp] = old

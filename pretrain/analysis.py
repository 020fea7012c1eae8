"""Figure 5: how confident the pooled label of a random crop is, as a function of the crop's IoU with the object."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import RandomResizedCrop

from relabel.data.stats import box_iou
from relabel.pooling import label_pool

BINS = np.linspace(0.0, 1.0, 11)  # IoU = 0 is its own bin; then (0, 0.1], ..., (0.9, 1]


def label_confidence(ann: list[dict], store, seed: int = 0, n_images: int = 1000,
                     crops_per_image: int = 20) -> tuple[dict, int]:
    """Mean max-softmax of LabelPooling over RandomResizedCrop(0.08–1) crops, binned by the crop's best IoU with
    the boxes of the image's labelled class (paper Fig. 5: 5M crops of ImageNet train). `ann`: the train images
    with their boxes (`pretrain.artifacts.train_annotations`: file, width, height, label, objects of class/box);
    `store`: the label maps of those files. Returns (metrics, how many images were sampled)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ann), size=min(n_images, len(ann)), replace=False)
    ious, boxes_n, rows, single = [], [], [], []  # single: the class of the crop's only object, or -1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in pick:
            im = ann[i]
            w, h = im["width"], im["height"]
            gt = np.array([o["box"] for o in im["objects"] if o["class"] == im["label"]], np.float64)
            allb = np.array([o["box"] for o in im["objects"]], np.float64).reshape(-1, 4)
            area = np.maximum((allb[:, 2] - allb[:, 0]) * (allb[:, 3] - allb[:, 1]), 1e-9)
            dummy = torch.empty(1, h, w)
            for _ in range(crops_per_image):
                top, left, ch, cw = RandomResizedCrop.get_params(dummy, [0.08, 1.0], [3 / 4, 4 / 3])
                crop = np.array([[left, top, left + cw, top + ch]], np.float64)
                ious.append(box_iou(crop, gt).max() if len(gt) else 0.0)
                boxes_n.append([left / w, top / h, (left + cw) / w, (top + ch) / h])
                rows.append(i)
                inside = _inside_fraction(crop[0], allb, area)
                one = (inside >= 0.5).sum() == 1 and (inside >= 0.1).sum() == 1
                single.append(int(im["objects"][int(inside.argmax())]["class"]) if one else -1)
    paths = [ann[i]["file"] for i in rows]
    srow = store.rows(paths)
    conf, top = [], []
    for b in range(0, len(srow), 4096):
        s, idx = store.read_batch(srow[b:b + 4096])
        logits = label_pool(s, idx, torch.tensor(boxes_n[b:b + 4096], dtype=torch.float32), store.meta.num_classes)
        conf.append(torch.softmax(logits, 1).max(1).values)
        top.append(logits.argmax(1))
    conf, top = torch.cat(conf).numpy(), torch.cat(top).numpy()
    single = np.asarray(single)
    one = single >= 0
    label = np.array([ann[i]["label"] for i in rows])
    other = one & (label != single)
    ious = np.asarray(ious)
    centers, means = [0.0], [float(conf[ious <= 0].mean()) if (ious <= 0).any() else float("nan")]
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (ious > lo) & (ious <= hi)
        if m.any():
            centers.append(float((lo + hi) / 2))
            means.append(float(conf[m].mean()))
    metrics = {"iou_bins": centers, "mean_conf": means, "conf_iou0": means[0],
               "conf_iou_gt_05": float(conf[ious > 0.5].mean()), "n_crops": int(len(conf)),
               "frac_iou0": float((ious <= 0).mean()),
               # crops that hold exactly one object (>= half of its box inside, < a tenth of every other box):
               # how often the pooled label's top-1 and the image's original label name that object (issue 15)
               "single_object_crops": int(one.sum()),
               "single_pooled_top1": float(100 * (top[one] == single[one]).mean()) if one.any() else float("nan"),
               "single_original_agree": float(100 * (label[one] == single[one]).mean()) if one.any() else float("nan"),
               # ... and of those, the crops whose object is of another class than the image's label (the original
               # label is wrong on each): how often the pooled label names the object
               "single_other_crops": int(other.sum()),
               "single_other_pooled_top1": float(100 * (top[other] == single[other]).mean()) if other.any()
               else float("nan")}
    return metrics, len(pick)


def _inside_fraction(crop: np.ndarray, boxes: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Fraction of each box's area that lies inside the crop (x0, y0, x1, y1)."""
    w = np.clip(np.minimum(boxes[:, 2], crop[2]) - np.maximum(boxes[:, 0], crop[0]), 0, None)
    h = np.clip(np.minimum(boxes[:, 3], crop[3]) - np.maximum(boxes[:, 1], crop[1]), 0, None)
    return w * h / area

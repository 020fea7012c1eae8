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
    ious, boxes_n, rows = [], [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in pick:
            im = ann[i]
            w, h = im["width"], im["height"]
            gt = np.array([o["box"] for o in im["objects"] if o["class"] == im["label"]], np.float64)
            dummy = torch.empty(1, h, w)
            for _ in range(crops_per_image):
                top, left, ch, cw = RandomResizedCrop.get_params(dummy, [0.08, 1.0], [3 / 4, 4 / 3])
                crop = np.array([[left, top, left + cw, top + ch]], np.float64)
                ious.append(box_iou(crop, gt).max() if len(gt) else 0.0)
                boxes_n.append([left / w, top / h, (left + cw) / w, (top + ch) / h])
                rows.append(i)
    paths = [ann[i]["file"] for i in rows]
    srow = store.rows(paths)
    conf = []
    for b in range(0, len(srow), 4096):
        s, idx = store.read_batch(srow[b:b + 4096])
        logits = label_pool(s, idx, torch.tensor(boxes_n[b:b + 4096], dtype=torch.float32), store.meta.num_classes)
        conf.append(torch.softmax(logits, 1).max(1).values)
    conf = torch.cat(conf).numpy()
    ious = np.asarray(ious)
    centers, means = [0.0], [float(conf[ious <= 0].mean()) if (ious <= 0).any() else float("nan")]
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        m = (ious > lo) & (ious <= hi)
        if m.any():
            centers.append(float((lo + hi) / 2))
            means.append(float(conf[m].mean()))
    metrics = {"iou_bins": centers, "mean_conf": means, "conf_iou0": means[0],
               "conf_iou_gt_05": float(conf[ious > 0.5].mean()), "n_crops": int(len(conf)),
               "frac_iou0": float((ious <= 0).mean())}
    return metrics, len(pick)

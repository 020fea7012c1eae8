"""LabelPooling: orientation on asymmetric maps, exactness against references, official mode, variants, flips."""
import math

import pytest
import torch
import torch.nn.functional as nnf

from relabel.pooling import (VARIANTS, crop_weights, dense_label_pool, global_pool, label_pool, mix_onehot,
                             relabel_target)
from relabel.transforms import ComposeWithBox, RandomHorizontalFlipWithBox, RandomResizedCropWithBox


def random_topk(bsz, k, h, w, num_classes, gen):
    scores = torch.randn(bsz, k, h, w, generator=gen) * 3
    idx = torch.rand(bsz, h, w, num_classes, generator=gen).argsort(-1)[..., :k].permute(0, 3, 1, 2)
    return scores, idx


def random_boxes(n, gen, min_size=0.0):
    a, b = torch.rand(n, 2, generator=gen), torch.rand(n, 2, generator=gen)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    hi = torch.maximum(hi, (lo + min_size).clamp(max=1.0))
    return torch.cat([lo, hi], 1)


def asymmetric_map(h=15, w=15):
    """Class 1 only in the left third, class 2 only in the top third (classes 0/3 elsewhere, low scores)."""
    cols = torch.arange(w)[None, :].expand(h, w)
    rows = torch.arange(h)[:, None].expand(h, w)
    left, top = cols < w // 3, rows < h // 3
    idx = torch.stack([torch.where(left, 1, 0), torch.where(top, 2, 3)])[None]
    scores = torch.stack([torch.where(left, 6.0, 1.0), torch.where(top, 6.0, 1.0)])[None]
    return scores, idx


# ---------------------------------------------------------------------------------------------- orientation
LEFT_BOX = [0.0, 0.5, 0.3, 1.0]   # x1, y1, x2, y2: bottom-left, away from the top third
TOP_BOX = [0.5, 0.0, 1.0, 0.3]    # top-right, away from the left third


@pytest.mark.parametrize("box, inside, outside", [(LEFT_BOX, 1, 2), (TOP_BOX, 2, 1)])
def test_crop_pools_the_class_inside_it(box, inside, outside):
    scores, idx = asymmetric_map()
    prob = relabel_target(scores, idx, torch.tensor([box]), 4)[0]
    assert prob.argmax().item() == inside
    assert prob[inside] > 0.9 and prob[outside] < 0.01


def test_official_mode_pools_the_transposed_box():
    # The official code passes (top, left, bottom, right) where roi_align reads (x1, y1, x2, y2): on maps
    # stored [h, w] a bottom-left crop pools the top-right region (docs/references.md). Our mode must not.
    scores, idx = asymmetric_map()
    prob = relabel_target(scores, idx, torch.tensor([LEFT_BOX]), 4, official=True)[0]
    assert prob.argmax().item() == 2


def test_transform_box_and_pooling_agree_with_image_content():
    """End to end: a map that is the downsampled image; each crop's pooled value = the crop's pixel mean."""
    H, W = 90, 120
    img = torch.zeros(3, H, W)
    img[0, :, : W // 3] = 1.0      # 'class 1' pixels: left third
    img[1, : H // 3, :] = 1.0      # 'class 2' pixels: top third
    h, w = 15, 15
    grid = nnf.adaptive_avg_pool2d(img[:2], (h, w))                       # [2, h, w] class evidence
    scores, idx = grid[None], torch.tensor([1, 2])[None, :, None, None].expand(1, 2, h, w)
    pipeline = ComposeWithBox([RandomResizedCropWithBox(48, scale=(0.2, 1.0), antialias=True),
                               RandomHorizontalFlipWithBox(0.5)])
    torch.manual_seed(0)
    flipped_seen = 0
    for _ in range(30):
        crop, box, flipped = pipeline(img)
        flipped_seen += int(flipped)
        pooled = label_pool(scores, idx, box[None], 3, flips=torch.tensor([flipped]), output_size=3)[0]
        blocks = nnf.adaptive_avg_pool2d(crop[:2], (3, 3))                # what the crop actually shows
        assert torch.allclose(pooled[1:], blocks, atol=0.12), (box, flipped)
    assert 5 < flipped_seen < 25


# ---------------------------------------------------------------------------------------------- references
def bilinear(m, y, x):
    """torchvision's border rules, written out: zero outside [-1, n], clamp to the grid, then interpolate."""
    h, w = m.shape[-2:]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return torch.zeros(m.shape[0], dtype=m.dtype)
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * m[:, y0, x0] + (1 - ly) * lx * m[:, y0, x1]
            + ly * (1 - lx) * m[:, y1, x0] + ly * lx * m[:, y1, x1])


def reference_pool(dense, box, out, official):
    """Slow, obviously-correct RoIAlign of one dense map [C, h, w] over one box, in float64."""
    h, w = dense.shape[-2:]
    x1, y1, x2, y2 = [float(v) for v in box]
    if official:  # their rois: (top, left, bottom, right) * w - 0.5 read as (x1, y1, x2, y2), aligned=False
        rx1, ry1, rx2, ry2 = y1 * w - 0.5, x1 * w - 0.5, y2 * w - 0.5, x2 * w - 0.5
        rw, rh = max(rx2 - rx1, 1.0), max(ry2 - ry1, 1.0)
    else:         # cell centres at (c + 0.5) / w: the edge u sits at u * w - 0.5
        rx1, ry1, rx2, ry2 = x1 * w - 0.5, y1 * h - 0.5, x2 * w - 0.5, y2 * h - 0.5
        rw, rh = rx2 - rx1, ry2 - ry1
    bw, bh = rw / out, rh / out
    ny, nx = math.ceil(bh), math.ceil(bw)
    res = torch.zeros(dense.shape[0], out, out, dtype=torch.float64)
    for p in range(out):
        for q in range(out):
            acc = torch.zeros(dense.shape[0], dtype=torch.float64)
            for iy in range(ny):
                for ix in range(nx):
                    y = ry1 + p * bh + (iy + 0.5) * bh / ny
                    x = rx1 + q * bw + (ix + 0.5) * bw / nx
                    acc += bilinear(dense, y, x)
            res[:, p, q] = acc / max(ny * nx, 1)
    return res


def to_dense(scores, idx, num_classes):
    d = torch.zeros(scores.shape[0], num_classes, *scores.shape[2:], dtype=torch.float64)
    return d.scatter_add_(1, idx, scores.double())


@pytest.mark.parametrize("official", [False, True])
@pytest.mark.parametrize("out", [1, 2])
def test_matches_explicit_bilinear_reference(official, out):
    gen = torch.Generator().manual_seed(1)
    scores, idx = random_topk(6, 3, 7, 7, 11, gen)
    boxes = random_boxes(6, gen)
    boxes[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    boxes[1] = torch.tensor([0.41, 0.2, 0.43, 0.21])  # smaller than a cell
    got = label_pool(scores, idx, boxes, 11, output_size=out, official=official).double()
    dense = to_dense(scores, idx, 11)
    for b in range(6):
        ref = reference_pool(dense[b], boxes[b], out, official)
        ref = ref[:, 0, 0] if out == 1 else ref
        assert torch.allclose(got[b], ref, atol=1e-5), (b, (got[b] - ref).abs().max())


@pytest.mark.parametrize("official", [False, True])
@pytest.mark.parametrize("out", [1, 3])
def test_matches_torchvision_roi_align_on_the_dense_map(official, out):
    gen = torch.Generator().manual_seed(2)
    scores, idx = random_topk(64, 5, 15, 15, 100, gen)
    boxes = random_boxes(64, gen)
    got = label_pool(scores, idx, boxes, 100, output_size=out, official=official)
    ref = dense_label_pool(scores, idx, boxes, 100, output_size=out, official=official)
    assert torch.allclose(got, ref, atol=1e-5)


def test_rank_planes_would_be_wrong_but_we_are_not():
    # Rank 0 holds class 0 on the left half and class 1 on the right: a crop of the right half has no class 0.
    scores = torch.ones(1, 1, 4, 4)
    idx = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    idx[..., 2:] = 1
    logits = label_pool(scores, idx, torch.tensor([[0.5, 0.0, 1.0, 1.0]]), 2)[0]
    assert logits.tolist() == pytest.approx([0.0, 1.0])


def test_official_formula_by_hand():
    # 4×4 map, crop top=0.25 left=0.5 bottom=0.75 right=1.0. Official rois = (0.5, 1.5, 2.5, 3.5) read as
    # (x1, y1, x2, y2): 2×2 samples at x ∈ {1, 2}, y ∈ {2, 3} — whole cells, so the mean of m[2:4, 1:3].
    m = torch.arange(16.0).reshape(1, 1, 4, 4)
    box = torch.tensor([[0.5, 0.25, 1.0, 0.75]])  # x1=left, y1=top, x2=right, y2=bottom
    idx = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    official = label_pool(m, idx, box, 1, official=True)[0, 0]
    assert official.item() == pytest.approx(m[0, 0, 2:4, 1:3].mean().item())
    # Ours pools the box itself: x ∈ [1.5, 3.5] -> samples 2, 3; y ∈ [0.5, 2.5] -> samples 1, 2.
    ours = label_pool(m, idx, box, 1)[0, 0]
    assert ours.item() == pytest.approx(m[0, 0, 1:3, 2:4].mean().item())


def test_full_box_equals_global_mean():
    gen = torch.Generator().manual_seed(3)
    scores, idx = random_topk(4, 5, 15, 15, 30, gen)
    full = torch.tensor([[0.0, 0.0, 1.0, 1.0]]).expand(4, 4)
    assert torch.allclose(label_pool(scores, idx, full, 30), global_pool(scores, idx, 30), atol=1e-5)


def test_crop_weights_sum_to_one_inside_the_image():
    gen = torch.Generator().manual_seed(4)
    wy, wx = crop_weights(random_boxes(100, gen, min_size=0.05), (15, 15), 2)
    assert torch.allclose(wy.sum(-1), torch.ones(100, 2), atol=1e-5)
    assert torch.allclose(wx.sum(-1), torch.ones(100, 2), atol=1e-5)


# ---------------------------------------------------------------------------------------------- flips
def test_flip_mirrors_only_multi_cell_outputs():
    gen = torch.Generator().manual_seed(5)
    scores, idx = random_topk(8, 5, 15, 15, 20, gen)
    boxes = random_boxes(8, gen, min_size=0.2)
    flips = torch.tensor([True, False] * 4)
    one = label_pool(scores, idx, boxes, 20)
    assert torch.equal(label_pool(scores, idx, boxes, 20, flips=flips), one)
    plain = label_pool(scores, idx, boxes, 20, output_size=2)
    flipped = label_pool(scores, idx, boxes, 20, output_size=2, flips=flips)
    assert torch.allclose(flipped[flips], plain[flips].flip(-1))
    assert torch.equal(flipped[~flips], plain[~flips])


# ---------------------------------------------------------------------------------------------- variants
def test_variants_are_distributions_with_the_right_shape():
    gen = torch.Generator().manual_seed(6)
    scores, idx = random_topk(16, 5, 15, 15, 50, gen)
    boxes, labels = random_boxes(16, gen, 0.1), torch.randint(0, 50, (16,), generator=gen)
    for v in VARIANTS:
        t = relabel_target(scores, idx, boxes, 50, variant=v, labels=labels)
        assert t.shape == (16, 50) and torch.allclose(t.sum(1), torch.ones(16), atol=1e-5), v
    loc = label_pool(scores, idx, boxes, 50)
    assert torch.allclose(relabel_target(scores, idx, boxes, 50), torch.softmax(loc, 1))
    glob = global_pool(scores, idx, 50)
    assert torch.allclose(relabel_target(scores, idx, None, 50, variant="global_multi"), torch.softmax(glob, 1))
    mix = relabel_target(scores, idx, boxes, 50, variant="mix", labels=labels)
    assert torch.allclose(mix, 0.5 * torch.softmax(loc, 1) + 0.5 * nnf.one_hot(labels, 50))
    assert torch.allclose(mix_onehot(torch.softmax(loc, 1), labels, 0.5), mix)


def test_single_variants_take_argmax_after_pooling():
    scores, idx = asymmetric_map()
    single = relabel_target(scores, idx, torch.tensor([LEFT_BOX]), 4, variant="localized_single")
    assert single[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    # Globally: class 1 (a third at 6) vs class 2 (a third at 7) vs class 3 (two thirds at 1) -> class 2.
    scores[0, 1][idx[0, 1] == 2] = 7.0
    glob = relabel_target(scores, idx, None, 4, variant="global_single")
    assert glob[0].argmax().item() == 2


def test_single_never_picks_an_absent_class_at_the_zero_filler():
    scores = -torch.ones(1, 1, 3, 3)
    idx = torch.full((1, 1, 3, 3), 2)
    t = relabel_target(scores, idx, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 5, variant="localized_single")
    assert t[0].argmax().item() == 2
    assert relabel_target(scores, idx, None, 5, variant="global_single")[0].argmax().item() == 2


def test_clear_errors():
    scores, idx = asymmetric_map()
    with pytest.raises(ValueError, match="unknown LabelPooling variant"):
        relabel_target(scores, idx, torch.tensor([LEFT_BOX]), 4, variant="localised")
    with pytest.raises(ValueError, match="pass labels"):
        relabel_target(scores, idx, torch.tensor([LEFT_BOX]), 4, variant="mix")
    with pytest.raises(ValueError, match="one box per crop"):
        label_pool(scores, idx, torch.tensor([LEFT_BOX, TOP_BOX]), 4)
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        label_pool(scores, idx, torch.tensor(LEFT_BOX), 4)


def test_precomputed_crop_weights_give_the_same_targets():
    gen = torch.Generator().manual_seed(7)
    scores, idx = random_topk(8, 5, 15, 15, 40, gen)
    boxes, flips = random_boxes(8, gen, 0.1), torch.rand(8, generator=gen) < 0.5
    for official in (False, True):
        wts = crop_weights(boxes, (15, 15), 1, flips, official)
        for v in ("localized_multi", "localized_single"):
            a = relabel_target(scores, idx.short(), None, 40, variant=v, weights=wts)
            b = relabel_target(scores, idx, boxes, 40, variant=v, flips=flips, official=official)
            assert torch.equal(a, b), (official, v)

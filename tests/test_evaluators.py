"""Evaluator metrics on hand-written cases, checked by hand and against independent references (timm's
RealLabelsImagenet, scikit-learn); the evaluators end to end on toy data whose answer is known."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
from PIL import Image
from sklearn.metrics import accuracy_score, balanced_accuracy_score, top_k_accuracy_score

from relabel import evaluators as E
from relabel import outcomes
from relabel.checkpoint import save_model
from relabel.data import ensure_world
from relabel.data.readers import read_shankar
from relabel.metrics import (ALEXNET_ERR, CORRUPTIONS, Normalized, corruption_summary, fgsm, real_accuracy,
                              set_accuracy, shankar_accuracy, subset_accuracy, topk_accuracy)
from relabel.evaluators import corruptions as C
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD

# A reduced mini world (seconds to build) for end-to-end tests; shared by the CLI test files.
SMALL_WORLD = dict(n_train=60, n_extra=20, n_val=60, n_v2_per_class=2, n_imagenet_a=10, n_bgc_per_class=3,
                   n_coco_train=8, n_coco_val=6, n_finegrained_train_per_class=2, n_finegrained_val_per_class=1,
                   n_finegrained_test_per_class=1)
TINY_KW = {"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8}


def make_small_world(root: Path) -> Path:
    return ensure_world(root, seed=0, log=lambda _: None, **SMALL_WORLD)


def make_tiny_checkpoint(path: Path, num_classes: int = 10, arch: str = "resnet18") -> Path:
    torch.manual_seed(0)
    model = timm.create_model(arch, num_classes=num_classes, **TINY_KW)
    return save_model(model, path, arch=arch, model_kwargs=TINY_KW, extra={"input_size": 32, "seed": 3})


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_small_world(tmp_path_factory.mktemp("worlds"))


class Unnormalize(nn.Module):
    """Base of toy models: sees the [0, 1] pixels the evaluators normalised."""

    def pixels(self, x):
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return x * std + mean


class ConstantModel(Unnormalize):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)
        self.num_classes = len(logits)
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.logits.expand(len(x), -1) + 0 * self.dummy


# ---------------------------------------------------------------- single- and multi-label accuracy

def test_topk_accuracy_by_hand_and_sklearn():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5], [0.3, 0.4, 0.3]])
    labels = [2, 0, 1, 1]
    acc = topk_accuracy(logits, labels, ks=(1, 2))
    assert acc["top1"] == pytest.approx(50.0)  # rows 1 and 3 right
    assert acc["top2"] == pytest.approx(100.0)
    for k in (1, 2):
        assert acc[f"top{k}"] == pytest.approx(100 * top_k_accuracy_score(labels, logits.numpy(), k=k))


def _real_case():
    rng = np.random.default_rng(0)
    real = [[1], [], [0, 2], [3], [], [4, 5], [2], [0], [5], [1, 3]]
    files = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(len(real))]
    logits = torch.tensor(rng.normal(size=(len(real), 6)), dtype=torch.float32)
    return real, files, logits


def test_real_accuracy_matches_timm_reference(tmp_path):
    from timm.data.real_labels import RealLabelsImagenet
    real, files, logits = _real_case()
    (tmp_path / "real.json").write_text(json.dumps(real))
    ref = RealLabelsImagenet(files, real_json=str(tmp_path / "real.json"), topk=(1, 5))
    ref.add_result(logits)
    ours = real_accuracy(logits, files, {i + 1: s for i, s in enumerate(real)}, ks=(1, 5))
    assert ours["top1"] == pytest.approx(ref.get_accuracy(1))
    assert ours["top5"] == pytest.approx(ref.get_accuracy(5))
    assert ours["n_scored"] == 8 and ours["n_empty"] == 2


def test_real_excludes_empty_sets_by_hand():
    logits = torch.tensor([[9.0, 0, 0], [9.0, 0, 0], [0, 9.0, 0], [0, 0, 9.0]])
    files = [f"val_{i:08d}.png" for i in (1, 2, 3, 4)]  # mini-world names carry the same val index
    real = {1: [0], 2: [], 3: [0, 2], 4: [2, 1]}
    out = real_accuracy(logits, files, real, ks=(1,))
    assert out["top1"] == pytest.approx(200 / 3)  # images 1 and 4 right, 3 wrong, 2 not scored
    assert out["n_scored"] == 3
    with pytest.raises(ValueError, match="no image has a non-empty label set"):
        set_accuracy(logits[:1], [[]])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_shankar_both_variants_by_hand_and_sklearn(tmp_path):
    classes = ["n01", "n02", "n03"]
    ann = {"initial_annots": {
        "ILSVRC2012_val_00000001.JPEG": {"correct": ["n01"], "unclear": [], "wrong": ["n02"]},
        "ILSVRC2012_val_00000002.JPEG": {"correct": ["n02"], "unclear": ["n01"], "wrong": []},
        "ILSVRC2012_val_00000003.JPEG": {"correct": ["n03", "n02"], "unclear": [], "wrong": []},
        "ILSVRC2012_val_00000004.JPEG": {"correct": ["n01"], "unclear": [], "wrong": []},
        "ILSVRC2012_val_00000005.JPEG": {"correct": ["n02"], "unclear": [], "wrong": []},
        "imagenet2candidates_xyz.jpg": {"correct": ["n01"], "unclear": [], "wrong": []}},
        "problematic_images": {"ILSVRC2012_val_00000004.JPEG": "bad"}, "imagenet_m": []}
    (tmp_path / "s.json").write_text(json.dumps(ann))
    labels_file = read_shankar(tmp_path / "s.json", classes)
    files = [f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 2, 3, 4, 5, 6)]  # 6 is not annotated
    labels = [0, 1, 2, 0, 1, 2]  # original ImageNet labels
    pred = [0, 0, 1, 2, 2, 2]
    logits = nn.functional.one_hot(torch.tensor(pred), 3).float()
    out = shankar_accuracy(logits, files, labels, labels_file)
    # scored: 1, 2, 3, 5 (4 problematic, 6 unannotated). (a): 1 ✓, 2 ✗ (n01 only unclear), 3 ✓, 5 ✗ → 50%.
    assert out["top1"] == pytest.approx(50.0)
    assert out["n_scored"] == 4 and out["n_problematic"] == 1
    # (b): correct ∪ unclear → 1 ✓, 2 ✓, 3 ✓, 5 ✗; per class: c0 {1} = 1, c1 {2, 5} = 0.5, c2 {3} = 1 → 83.3%.
    assert out["top1_unclear_classavg"] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    y_true = [0, 1, 2, 1]
    hit = [True, True, True, False]
    ref = balanced_accuracy_score(y_true, [y if h else -1 for y, h in zip(y_true, hit)])
    assert out["top1_unclear_classavg"] == pytest.approx(100 * ref)


def test_subset_accuracy_masks_logits_outside_the_subset():
    # class 7 is everyone's best logit but not in the subset {1, 3}: the argmax must be taken among 1 and 3.
    logits = torch.tensor([[0, 1.0, 0, 2.0, 0, 0, 0, 9.0],
                           [0, 3.0, 0, 2.0, 0, 0, 0, 9.0],
                           [0, 3.0, 0, 2.0, 0, 0, 0, 9.0]])
    labels = [3, 1, 3]
    assert subset_accuracy(logits, labels, [1, 3]) == pytest.approx(200 / 3)
    masked_pred = np.array([1, 3])[logits[:, [1, 3]].argmax(1).numpy()]
    assert subset_accuracy(logits, labels, [1, 3]) == pytest.approx(100 * accuracy_score(labels, masked_pred))
    assert topk_accuracy(logits, labels, ks=(1,))["top1"] == 0.0  # unmasked: all wrong


# ---------------------------------------------------------------- ImageNet-C

def test_mce_uses_alexnet_constants_by_name():
    acc = {"brightness": {"1": 90, "2": 80, "3": 70, "4": 60, "5": 50},  # mean error 0.3
           "gaussian_noise": {"5": 10, "4": 20, "3": 30, "2": 40, "1": 50}}  # mean error 0.7
    out = corruption_summary(acc)
    ce_b, ce_g = 100 * 0.3 / 0.564592, 100 * 0.7 / 0.886428
    assert out["ce"]["brightness"] == pytest.approx(ce_b) and out["ce"]["gaussian_noise"] == pytest.approx(ce_g)
    assert out["mce"] == pytest.approx((ce_b + ce_g) / 2)
    assert out["mean_acc"] == pytest.approx(50.0)
    assert corruption_summary(dict(reversed(list(acc.items()))))["mce"] == pytest.approx(out["mce"])


def test_mce_is_100_for_alexnet_errors_and_scales_linearly():
    alex = {c: {str(s): 100 * (1 - ALEXNET_ERR[c]) for s in range(1, 6)} for c in reversed(CORRUPTIONS)}
    assert corruption_summary(alex)["mce"] == pytest.approx(100.0)
    half = {c: {str(s): 100 * (1 - ALEXNET_ERR[c] / 2) for s in range(1, 6)} for c in CORRUPTIONS}
    assert corruption_summary(half)["mce"] == pytest.approx(50.0)
    assert len(CORRUPTIONS) == 15


def test_all_corruptions_run_deterministically_on_small_images():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    state = np.random.get_state()
    for name in CORRUPTIONS:
        for s in (1, 5):
            a, b = C.corrupt(img, name, s, seed=7), C.corrupt(img, name, s, seed=7)
            assert a.dtype == np.uint8 and a.shape == img.shape, name
            assert np.array_equal(a, b), name
    assert not np.array_equal(C.corrupt(img, "gaussian_noise", 3, 1), C.corrupt(img, "gaussian_noise", 3, 2))
    assert np.array_equal(np.random.get_state()[1], state[1])  # the caller's global RNG is left alone
    assert not hasattr(np, "float_") or np.float_ is np.float64  # numpy itself was not patched


# ---------------------------------------------------------------- FGSM

def test_fgsm_moves_every_pixel_by_exactly_epsilon_within_0_1():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    x = torch.rand(6, 3, 8, 8)
    x[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 0.01, 0.995])  # pixels that will clip
    y = torch.randint(0, 5, (6,))
    eps = 8 / 255
    x_adv = fgsm(model, x, y, eps)
    x_req = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x_req), y, reduction="sum").backward()
    step = x_req.grad.sign()
    assert (step != 0).all()
    expected = (x + eps * step).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-7)
    unclipped = ((x + eps * step) >= 0) & ((x + eps * step) <= 1)
    assert torch.allclose((x_adv - x).abs()[unclipped], torch.full_like(x[unclipped], eps), atol=1e-6)
    assert unclipped.float().mean() > 0.9 and (~unclipped).any()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert nn.functional.cross_entropy(model(x_adv), y) > nn.functional.cross_entropy(model(x), y)


def test_normalized_wrapper_matches_normalising_first():
    model = nn.Conv2d(3, 2, 1)
    x = torch.rand(2, 3, 4, 4)
    norm = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(Normalized(model, IMAGENET_MEAN, IMAGENET_STD)(x), model(norm), atol=1e-6)


# ---------------------------------------------------------------- ImageNetV2 folders

class MeanPixelModel(Unnormalize):
    """Predicts class k for a solid image of grey level 20·k."""

    def __init__(self, n):
        super().__init__()
        self.num_classes, self.dummy = n, nn.Parameter(torch.zeros(1))

    def forward(self, x):
        level = self.pixels(x).mean((1, 2, 3)) * 255 / 20
        return -(torch.arange(self.num_classes)[None] - level[:, None]).abs() + 0 * self.dummy


def test_v2_folder_10_gets_label_10(tmp_path):
    n = 12  # folders 0..11: a string sort would put '10' and '11' before '2'
    for k in range(n):
        (tmp_path / "v2" / str(k)).mkdir(parents=True)
        Image.fromarray(np.full((8, 8, 3), 20 * k, np.uint8)).save(tmp_path / "v2" / str(k) / "a.png")
    roots = E.DataRoots(scale="mini", name="toy", classes=tuple(f"c{k:02d}" for k in range(n)),
                        v2={"top-images": tmp_path / "v2"})
    res = E.evaluate("v2-top-images", MeanPixelModel(n), roots, input_size=8, crop_ratio=1.0, progress=False)
    assert res.metrics["top1"] == 100.0
    assert res.dataset["size"] == n and res.dataset["name"] == "imagenetv2-top-images"


# ---------------------------------------------------------------- background challenge on a toy model

class CentrePixelModel(Unnormalize):
    """Fine class = the strongest channel of the centre pixel (red 0, green 1, blue 2)."""
    num_classes = 3

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        p = self.pixels(x)
        return 10 * p[:, :, p.shape[2] // 2, p.shape[3] // 2] + 0 * self.dummy


COLORS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255)}


def _in9_toy(root: Path):
    """12 foregrounds: (coarse class, fg colour, mask covers the centre?) and 12 backgrounds (centre colour);
    fine classes 0 → coarse 0, 1 → coarse 1, 2 → -1."""
    fgs = [(0, 0, True), (1, 1, True), (0, 0, False), (1, 2, True), (0, 0, True), (1, 1, False),
           (0, 1, True), (1, 1, True), (0, 0, True), (1, 0, True), (0, 0, True), (1, 1, True)]
    bg_centres = [0, 0, 1, 0, 2, 0, 1, 1, 0, 0, 1, 0]
    (root / "in_to_in9.json").write_text(json.dumps({"0": 0, "1": 1, "2": -1}))
    names = ("00_red", "01_green")
    for i, ((c, col, covers), bgc) in enumerate(zip(fgs, bg_centres)):
        img = np.full((32, 32, 3), 128, np.uint8)
        mask = np.zeros((32, 32), bool)
        if covers:
            mask[10:22, 10:22] = True
        else:
            mask[0:8, 0:8] = True
        img[mask] = COLORS[col]
        bg = np.full((32, 32, 3), 128, np.uint8)
        bg[14:18, 14:18] = COLORS[bgc]
        for variant, arr in (("original", img), ("only_bg_t", bg)):
            (root / variant / "val" / names[c]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / variant / "val" / names[c] / f"in9_{i:08d}.png")
        (root / "fg_mask" / "val" / names[c]).mkdir(parents=True, exist_ok=True)
        np.save(root / "fg_mask" / "val" / names[c] / f"in9_{i:08d}.npy", mask)
    # mixed_same: 3 of 4 right; mixed_rand: 1 of 4 right -> BG-gap 50.
    for variant, right in (("mixed_same", 3), ("mixed_rand", 1)):
        for j in range(4):
            (root / variant / "val" / "00_red").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), COLORS[0] if j < right else COLORS[2], np.uint8)).save(
                root / variant / "val" / "00_red" / f"in9_{j:08d}.png")
    return fgs, bg_centres


def test_background_challenge_on_a_toy_model_with_known_answer(tmp_path):
    fgs, bg_centres = _in9_toy(tmp_path)
    roots = E.DataRoots(scale="mini", name="toy", classes=("r", "g", "b"), bgc=tmp_path)
    res = E.evaluate("bgc", CentrePixelModel(), roots, input_size=32, crop_ratio=1.0, batch_size=64,
                     progress=False)
    m = res.metrics
    # By hand: a foreground survives every background iff its mask covers the centre and its colour is its
    # class (backgrounds' centres include every colour): items 0, 1, 4, 7, 8, 10, 11 -> 7 of 12.
    safe = [covers and col == c for c, col, covers in fgs]
    assert sum(safe) == 7
    assert m["challenge_acc"] == pytest.approx(100 * 7 / 12)
    assert m["n_vulnerable"] == 5 and m["n_foregrounds"] == 12 and m["n_backgrounds"] == 12
    # Early exit: safe foregrounds see all 12 backgrounds (batches 8 + 4); the others stop after the first batch.
    assert m["n_forwards"] == 7 * 12 + 5 * 8 < 12 * 12
    # Independent reference: every composite in numpy, classified by the rule, no batching or early exit.
    model = CentrePixelModel()
    table = {0: 0, 1: 1, 2: -1}
    vulnerable = 0
    order = sorted(range(12), key=lambda i: (fgs[i][0], i))  # read order: class folder, then file name
    for i in order:
        img = np.asarray(Image.open(next(tmp_path.glob(f"original/val/*/in9_{i:08d}.png"))))
        mask = np.load(next(tmp_path.glob(f"fg_mask/val/*/in9_{i:08d}.npy")))
        wrong = False
        for j in range(12):
            bg = np.asarray(Image.open(next(tmp_path.glob(f"only_bg_t/val/*/in9_{j:08d}.png"))))
            comp = np.where(mask[..., None], img, bg)
            x = (torch.tensor(comp).permute(2, 0, 1)[None].float() / 255 - torch.tensor(IMAGENET_MEAN).view(
                1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            wrong |= table[int(model(x).argmax())] != fgs[i][0]
        vulnerable += wrong
    assert m["n_vulnerable"] == vulnerable
    # Originals: 3 (blue → -1), 6 and 9 (other class's colour) and 5 (grey centre: tie → red) are wrong.
    assert m["acc_original"] == pytest.approx(100 * 8 / 12)
    assert m["acc_mixed_same"] == 75.0 and m["acc_mixed_rand"] == 25.0 and m["bg_gap"] == 50.0


# ---------------------------------------------------------------- registry on the small mini world

def test_every_evaluator_runs_on_the_small_world(world):
    roots = E.DataRoots.mini(world)
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, **TINY_KW)
    res = E.evaluate_many(E.NAMES, model, roots, input_size=32, progress=False, c_images=4,
                          c_corruptions=("gaussian_noise", "fog", "glass_blur"), c_severities=(1, 5))
    assert set(res) == set(E.NAMES)
    for name, r in res.items():
        assert {"name", "split", "size"} <= set(r.dataset) and r.dataset["size"] > 0, name
        assert r.params["eval_input_size"] == 32
        for v in r.metrics.values():
            if isinstance(v, float):
                assert np.isfinite(v), name
    assert res["val"].dataset["size"] == 60 and res["real"].dataset["size"] == res["real"].metrics["n_scored"]
    assert res["imagenet-c"].params["c_images"] == 4
    assert set(res["imagenet-c"].metrics["acc"]) == {"gaussian_noise", "fog", "glass_blur"}
    assert res["fgsm"].params["fgsm_epsilon"] == pytest.approx(8 / 255)
    assert "bg_gap" in res["bgc"].metrics and "acc_only_bg_t" in res["bgc"].metrics
    # per-image outcomes (issue 25): every metric a claim reads that is a mean over images carries them, and they
    # average to the metric; one image set per test set (val, ReaL, Shankar and FGSM score val's images)
    want = {"val": "top1", "v2-top-images": "top1", "v2-matched-frequency": "top1", "v2-threshold0.7": "top1",
            "real": "top1", "shankar": "top1", "fgsm": "top1", "imagenet-a": "top1", "imagenet-c": "mean_acc"}
    for name, metric in want.items():
        entry = res[name].outcomes[metric]
        got = outcomes.decode(entry)
        assert got.size == (4 if name == "imagenet-c" else res[name].dataset["size"]), name
        assert 100 * got.mean() == pytest.approx(res[name].metrics[metric], abs=1e-9), name
    assert res["imagenet-c"].outcomes["mean_acc"]["den"] == 6  # 3 corruptions × 2 severities per image
    assert res["val"].outcomes["top1"]["ids"] == res["fgsm"].outcomes["top1"]["ids"]


def test_imagenet_a_masks_to_the_subset_on_the_world(world):
    roots = E.DataRoots.mini(world)
    subset = [int(x) for x in (world / "imagenet_a" / "indices.txt").read_text().split()]
    logits = [10.0 if k == 0 else float(k) for k in range(10)]  # class 0 (outside the subset) wins unmasked
    assert 0 not in subset
    res = E.evaluate("imagenet-a", ConstantModel(logits), roots, input_size=32, progress=False)
    labels = [roots.classes.index(p.parent.name) for p in (world / "imagenet_a").rglob("*.png")]
    assert res.metrics["top1"] == pytest.approx(100 * np.mean([y == max(subset) for y in labels]))
    assert res.metrics["top1_all_classes"] == 0.0


def test_imagenet_c_pre_rendered_folders(world, tmp_path):
    for c in ("fog", "snow"):
        for s in (1, 2):
            for cls in ("digit0", "digit3"):
                (tmp_path / c / str(s) / cls).mkdir(parents=True)
                for p in sorted((world / "val" / cls).glob("*.png"))[:2]:
                    (tmp_path / c / str(s) / cls / p.name).write_bytes(p.read_bytes())
    roots = E.DataRoots.mini(world, imagenet_c=tmp_path)
    logits = [0.0] * 10
    logits[3] = 1.0  # always digit3: half of every cell is right
    res = E.evaluate("imagenet-c", ConstantModel(logits), roots, input_size=32, progress=False,
                     c_corruptions=("fog", "snow"), c_severities=(1, 2))
    assert res.params["c_source"] == "pre-rendered"
    assert res.metrics["acc"] == {c: {"1": 50.0, "2": 50.0} for c in ("fog", "snow")}
    assert res.metrics["mean_acc"] == 50.0
    with pytest.raises(E.DatasetMissing, match="ImageNet-C frost/1 folder"):
        E.evaluate("imagenet-c", ConstantModel(logits), roots, input_size=32, progress=False,
                   c_corruptions=("frost",), c_severities=(1,))


def test_clear_errors_for_missing_data_and_class_count(world, tmp_path):
    roots = E.DataRoots.mini(world)
    with pytest.raises(E.EvalError, match="outputs 5 classes but .* have 10"):
        E.evaluate("val", ConstantModel([0.0] * 5), roots, input_size=32, progress=False)
    gone = E.DataRoots.mini(world, v2={"top-images": tmp_path / "nope"})
    with pytest.raises(E.DatasetMissing, match=r"ImageNetV2 top-images folder .*nope does not exist; expected "
                                               r"<v2 variant>/<int class>/<image>"):
        E.check_data(["v2-top-images"], gone)
    with pytest.raises(ValueError, match="unknown evaluator option"):
        E.evaluate("val", ConstantModel([0.0] * 10), roots, input_size=32, epsilon=0.1)
    with pytest.raises(ValueError, match="unknown suite 'x'"):
        E.names_for_suites(["v2", "x"])
    assert E.names_for_suites(["v2", "val"]) == ("v2-top-images", "v2-matched-frequency", "v2-threshold0.7", "val")


def test_full_roots_use_timm_files(tmp_path):
    roots = E.DataRoots.full(tmp_path)
    assert len(roots.classes) == 1000 and list(roots.classes) == sorted(roots.classes)
    assert len(json.loads(roots.real_json.read_text())) == 50000
    indices = [int(x) for x in roots.imagenet_a_indices.read_text().split()]
    assert len(indices) == 200
    synsets = timm.data.ImageNetInfo().label_names()
    a_synsets = (roots.imagenet_a_indices.parent / "imagenet_a_synsets.txt").read_text().split()
    assert [roots.classes[i] for i in indices] == a_synsets and list(roots.classes) == list(synsets)
    assert roots.val == tmp_path / "val" and roots.imagenet_c is None
    assert roots.v2["threshold0.7"] == tmp_path / "imagenetv2" / "imagenetv2-threshold0.7-format-val"
    with pytest.raises(ValueError, match="unknown DataRoots field"):
        E.DataRoots.full(tmp_path, imagenet_r=tmp_path)


def test_evaluate_many_predicts_val_once(world):
    class Counting(ConstantModel):
        seen = 0

        def forward(self, x):
            Counting.seen += len(x)
            return super().forward(x)

    roots = E.DataRoots.mini(world)
    res = E.evaluate_many(["val", "real", "shankar"], Counting([0.0] * 10), roots, input_size=32, progress=False)
    assert Counting.seen == 60  # 60 val images, scored three ways
    assert res["real"].metrics["top1"] >= 0 and res["shankar"].dataset["name"] == "shankar-multilabel"


# ---------------------------------------------------------------- units: everything derives from UNIT_MODULES

def test_every_evaluator_module_is_a_listed_unit_and_the_lists_derive_from_them():
    import ast
    folder = Path(E.__file__).parent
    defines_unit = sorted(p.stem for p in folder.glob("*.py")
                          if any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "UNIT" for t in n.targets)
                                 for n in ast.parse(p.read_text()).body))
    assert defines_unit == sorted(E.UNIT_MODULES)  # a unit module not in the list would never be registered
    assert list(E.REGISTRY) == [n for u in E.UNITS for n in u.names] and set(E.NAMES) <= set(E.REGISTRY)
    assert set(E.LAYOUTS) == {u.layout_key for u in E.UNITS if u.layout}
    from pretrain.experiments import TARGET_EVALUATORS
    from results import tables as T
    assert TARGET_EVALUATORS == E.NAMES + ("cost",)
    columns = [c for u in E.UNITS for c in u.columns]
    assert {c.evaluator for c in columns} <= set(E.NAMES)
    assert [c[2] for c in T._T7_COLS] == [c.evaluator for c in columns if c.table == "table7"]

"""Issue #14 items 3, 5, 6 on fake data in the real layouts: training labels are ImageNet indices (train and val
share one folder rule), a label store holds the dtype its name says, and IN-9 is fed whole as its benchmark does."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from relabel import evaluators as E
from relabel.data.readers import list_class_folders
from relabel.evaluators.roots import timm_info
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, eval_transform
from tests.test_evaluators import TINY_KW, ConstantModel, make_small_world

WNIDS = sorted(timm_info("imagenet_synsets.txt").read_text().split())
SUBSET = (WNIDS[0], WNIDS[1], WNIDS[7], WNIDS[999])  # class indices 0, 1, 7, 999


def _jpegs(folder: Path, stems, size=(20, 16)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(stems):
        Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)).save(folder / f"{stem}.JPEG")


def _imagenet(root: Path, wnids=SUBSET, split: str = "train", per_class: int = 2) -> Path:
    for w in wnids:
        stems = ([f"{w}_{10 + i}" for i in range(per_class)] if split == "train"
                 else [f"ILSVRC2012_val_{WNIDS.index(w) * 10 + i + 1:08d}" for i in range(per_class)])
        _jpegs(root / split / w, stems)
    return root


def _full_cfg(monkeypatch, root: Path, official: Path | None = None):
    from pretrain.config import get_config
    monkeypatch.setenv("IMAGENET_ROOT", str(root))
    monkeypatch.setenv("RELABEL_OFFICIAL_MAPS", str(official or ""))
    return get_config("full")


# ------------------------------------------------------------------- item 3: labels are ImageNet class indices

def test_full_scale_train_labels_are_wnid_indices_despite_a_subset_and_stray_folders(tmp_path, monkeypatch):
    from pretrain.artifacts import train_samples
    root = _imagenet(tmp_path / "imagenet")
    for stray in ("lost+found", ".ipynb_checkpoints"):  # skipped by the documented rule, even holding images
        _jpegs(root / "train" / stray, ["x_1"])
    _, samples = train_samples(_full_cfg(monkeypatch, root))
    got = {s.path.split("/")[0]: s.label for s in samples}
    assert got == {w: WNIDS.index(w) for w in SUBSET} == {WNIDS[0]: 0, WNIDS[1]: 1, WNIDS[7]: 7, WNIDS[999]: 999}
    assert len(samples) == 2 * len(SUBSET)


def test_a_folder_that_is_not_a_class_is_one_clear_error_for_train_and_val_alike(tmp_path, monkeypatch):
    from pretrain.artifacts import train_samples
    root = _imagenet(_imagenet(tmp_path / "imagenet"), split="val")
    for split in ("train", "val"):
        _jpegs(root / split / "misc", ["x_1"])
    with pytest.raises(ValueError, match=r"training image folder .*train has folders \['misc'\] that are not in "
                                         r"the class list \(1000 classes"):
        train_samples(_full_cfg(monkeypatch, root))
    with pytest.raises(E.EvalError, match=r"ImageNet val folder .*val has folders \['misc'\] that are not in "
                                          r"the class list \(1000 classes"):
        E.evaluate("val", ConstantModel([0.0] * 1000), E.DataRoots.full(root), input_size=16, progress=False)


def test_val_reader_skips_the_same_folders_and_labels_by_wnid(tmp_path):
    root = _imagenet(tmp_path / "imagenet", wnids=SUBSET[1:], split="val", per_class=1)
    (root / "val" / "lost+found").mkdir()
    _jpegs(root / "val" / ".ipynb_checkpoints", ["ILSVRC2012_val_00000001"])
    ctx = E.base.EvalContext(nn.Identity(), E.DataRoots.full(root), 16, 0.875, torch.device("cpu"), 4, 0, False,
                             E.base.EvalOptions())
    paths, labels = E.val.val_samples(ctx)
    assert labels == [1, 7, 999] and [p.parent.name for p in paths] == list(SUBSET[1:])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_small_world(tmp_path_factory.mktemp("worlds"))


def test_mini_labels_unchanged_the_world_folders_sort_in_class_order(world):
    classes = E.DataRoots.mini(world).classes
    for split in ("train", "extra"):
        by_position = list_class_folders(world / split)  # the old rule: sorted position among the folders
        by_index = list_class_folders(world / split, classes)
        assert by_position[0] == sorted(classes) == list(classes)
        assert by_index[1] == by_position[1] and len(by_index[1]) > 0, split


# ------------------------------------------------------------------- item 5: a store holds the dtype of its name

def _official_release(root: Path, train: Path) -> dict:
    """The official layout `imagenet_efficientnet_l2_sz475_top5/<wnid>/<wnid>_<id>.pt`, one [2, 5, 15, 15]
    float32 map per training image: scores (continuous, not on any 8-bit grid), class indices as floats."""
    rng = np.random.default_rng(0)
    maps = {}
    for jpeg in sorted(train.rglob("*.JPEG")):
        scores = np.sort(rng.normal(0, 3, (5, 15, 15)).astype(np.float32), axis=0)[::-1].copy()
        idx = np.stack([rng.permutation(1000)[:5] for _ in range(225)], 1).reshape(5, 15, 15).astype(np.float32)
        f = root / jpeg.parent.name / f"{jpeg.stem}.pt"
        f.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(np.stack([scores, idx])), f)
        maps[jpeg.relative_to(train).as_posix()] = (scores, idx)
    return maps


def test_full_scale_official_import_holds_the_dtype_its_store_is_named_after(tmp_path, monkeypatch):
    from pretrain.artifacts import label_store
    root = _imagenet(tmp_path / "imagenet")
    release = tmp_path / "imagenet_efficientnet_l2_sz475_top5"
    maps = _official_release(release, root / "train")
    cfg = _full_cfg(monkeypatch, root, release)
    store, _ = label_store(cfg, "float32", 5)
    assert "float32-k5" in store.path.name and store.meta.score_dtype == "float32"
    assert np.load(store.path / "scores.npy", mmap_mode="r").dtype == np.float32
    for path, (scores, idx) in maps.items():  # lossless: the release's own float32 scores, bit for bit
        s, i = store.read(path, rank_order=True)
        assert np.array_equal(s, scores) and np.array_equal(i, idx.astype(np.int64)), path
    for dtype in ("float16", "uint8"):  # Table 6's reduced rows are derived from it, each at its own dtype
        derived, _ = label_store(cfg, dtype, 5)
        assert f"{dtype}-k5" in derived.path.name and derived.meta.score_dtype == dtype


# ------------------------------------------------------------------- item 6: IN-9 fed whole (official ToTensor)

class Spy(nn.Module):
    """Logits from the mean colour of the outer 8-pixel border; keeps every input it sees."""
    num_classes = 3

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen += [t.detach().clone() for t in x]
        border = torch.ones_like(x[0, 0], dtype=torch.bool)
        border[8:-8, 8:-8] = False
        return x[:, :, border].mean(2) + 0 * self.dummy


def _bgc(root: Path, size: int = 224) -> dict:
    """Two classes, one foreground each, two backgrounds; every image's border differs from its centre."""
    (root / "in_to_in9.json").write_text(json.dumps({"0": 0, "1": 1, "2": -1}))
    images = {}
    for i, cls in enumerate(("00_a", "01_b")):
        fg = np.full((size, size, 3), 30 + 100 * i, np.uint8)
        fg[:12] = (250, 10, 10)  # a border band the ImageNet centre crop would cut
        bg = np.full((size, size, 3), (10, 200, 60 * i), np.uint8)
        bg[:, -12:] = (5, 5, 250)
        mask = np.zeros((size, size), bool)
        mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = True
        for variant, arr in (("original", fg), ("only_bg_t", bg)):
            (root / variant / "val" / cls).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / variant / "val" / cls / f"in9_{i:08d}.png")
            images[(variant, i)] = arr
        (root / "fg_mask" / "val" / cls).mkdir(parents=True, exist_ok=True)
        np.save(root / "fg_mask" / "val" / cls / f"in9_{i:08d}.npy", mask)
        images[("mask", i)] = mask
    return images


def _as_input(arr: np.ndarray) -> torch.Tensor:
    """The benchmark's input: ToTensor (uint8 / 255), then ImageNet normalisation (inside the model wrapper)."""
    x = torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def test_bgc_feeds_in9_images_whole_not_resized_and_centre_cropped(tmp_path):
    images = _bgc(tmp_path)
    roots = E.DataRoots(scale="full", name="toy", classes=("a", "b", "c"), bgc=tmp_path)
    spy = Spy()
    res = E.evaluate("bgc", spy, roots, input_size=224, crop_ratio=0.875, batch_size=8, progress=False)
    # Every IN-9 image and every composite reaches the model whole: bit for bit ToTensor + normalise.
    want = [_as_input(images[(v, i)]) for v in ("original", "only_bg_t") for i in (0, 1)]
    for i in (0, 1):
        for j in (0, 1):
            want.append(_as_input(np.where(images[("mask", i)][..., None], images[("original", i)],
                                           images[("only_bg_t", j)])))
    seen = spy.seen
    assert all(t.shape == (3, 224, 224) for t in seen)
    for w in want:
        assert any(torch.equal(w, t) for t in seen)
    assert res.params["bgc_resized_to"] is None and res.params["bgc_native_size"] == [224, 224]
    assert res.params["eval_crop_ratio"] is None and "no resize or crop" in res.params["bgc_input"]
    # The ImageNet eval transform (resize 256, centre crop 224) would have cut the border: other logits.
    img = Image.fromarray(images[("original", 0)])
    old = eval_transform(224, 0.875)(img)
    assert not torch.equal(old, want[0])
    assert not torch.allclose(Spy()(old[None]), Spy()(want[0][None]), atol=1e-3)


def test_bgc_resizes_without_crop_only_when_the_model_needs_another_size(tmp_path):
    from torchvision.transforms.v2 import functional as TF
    images = _bgc(tmp_path, size=64)
    roots = E.DataRoots(scale="full", name="toy", classes=("a", "b", "c"), bgc=tmp_path)
    spy = Spy()
    res = E.evaluate("bgc", spy, roots, input_size=40, crop_ratio=0.875, batch_size=8, progress=False)
    whole = torch.from_numpy(images[("original", 1)]).permute(2, 0, 1)[None]
    resized = TF.resize(whole, [40, 40], antialias=True)[0].permute(1, 2, 0).numpy()
    assert any(torch.equal(_as_input(resized), t) for t in spy.seen)
    assert res.params["bgc_resized_to"] == 40 and res.params["bgc_native_size"] == [64, 64]
    assert "resized to 40x40" in res.params["bgc_input"] and "no crop" in res.params["bgc_input"]


def test_mini_bgc_still_runs_and_its_numbers_do_not_move(world):
    import timm
    from relabel.metrics import coarse_predictions, predict
    from relabel.data.readers import read_in9, read_in_to_in9
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, **TINY_KW)
    roots = E.DataRoots.mini(world)
    res = E.evaluate("bgc", model, roots, input_size=48, crop_ratio=1.0, progress=False)  # the mini protocol
    assert res.params["bgc_resized_to"] is None and 0 <= res.metrics["challenge_acc"] <= 100
    # At mini scale the 48 px IN-9 images already are the eval size: the old transform left them whole too.
    samples = read_in9(world / "bgc", "original")
    logits = predict(model, E.base.PathSet([p for p, _ in samples], eval_transform(48, 1.0)), batch_size=128,
                     progress=False)
    pred = coarse_predictions(logits, read_in_to_in9(world / "bgc" / "in_to_in9.json", 10))
    acc = 100.0 * (pred == torch.as_tensor([y for _, y in samples])).double().mean().item()
    assert res.metrics["acc_original"] == acc

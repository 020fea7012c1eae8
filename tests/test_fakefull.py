"""The fake full-scale tree (relabel/data/fakefull.py): real layouts, read by the same code that reads real data.

Built once per module (~2 s); the evaluator CLIs run on it with a random-init 1000-class tiny ResNet, the official
import reads its release, and the full-scale pretraining config finds every artifact input through its env vars.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from relabel import evaluators as E
from relabel import records as R
from relabel.checkpoint import save_model
from relabel.data import fakefull as F
from relabel.data.readers import list_int_folders, read_real_labels, read_shankar, read_voc_boxes, val_index
from relabel.evaluators.roots import timm_info
from relabel.official_maps import import_official

ROOT = Path(__file__).resolve().parents[1]
TINY_KW = {"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8}
WNIDS = timm_info("imagenet_synsets.txt").read_text().split()  # ImageNet's 1000 wnids in index order (timm)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("fakefull") / "tree"
    start = time.perf_counter()
    env = F.make_fake_full(root)
    return root, env, time.perf_counter() - start


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=1000, **TINY_KW)
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "tiny_full.safetensors", arch="resnet18",
                      model_kwargs=TINY_KW, extra={"seed": 0})


def _digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run(*args, env=None):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_builds_fast_deterministic_and_reuses_itself(tree, tmp_path):
    root, env, seconds = tree
    assert seconds < 5, f"building the fake tree took {seconds:.1f} s"
    assert set(env) == {"IMAGENET_ROOT", "RELABEL_OFFICIAL_MAPS", "RELABEL_CLEAN_LIST", "IMAGENET_VAL_BOXES",
                        "IMAGENET21K_ROOT", "COCO_ROOT"}
    assert all(Path(v).exists() and Path(v).is_absolute() for v in env.values())
    again = tmp_path / "again"
    assert F.make_fake_full(again) == {k: v.replace(str(root), str(again)) for k, v in env.items()}
    assert _digest(again) == _digest(root)  # same seed and sizes: byte-identical files
    stamp = (again / F.STAMP).stat().st_mtime_ns
    F.make_fake_full(again)  # the same tree again: reused, not rebuilt
    assert (again / F.STAMP).stat().st_mtime_ns == stamp
    F.make_fake_full(again, classes=2, train_per_class=1, c_corruptions=["fog"], bgc_per_class=1)  # replaced
    assert sorted(p.name for p in (again / "imagenet" / "train").iterdir()) == [WNIDS[0], WNIDS[1]]
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".stale-*"))


def test_refuses_a_folder_it_did_not_make_and_bad_sizes(tmp_path):
    (tmp_path / "data" / "train").mkdir(parents=True)
    with pytest.raises(F.FakeTreeError, match="not a fake tree"):
        F.make_fake_full(tmp_path / "data")
    for bad, msg in ((dict(classes=99), "classes must be"), (dict(c_corruptions=["rain"]), "rain"),
                     (dict(trian_per_class=3), "unknown fake-tree size"), (dict(val_per_class=0), "val_per_class")):
        with pytest.raises(F.FakeTreeError, match=msg):
            F.make_fake_full(tmp_path / "new", **bad)
    assert not (tmp_path / "new").exists()


def test_real_layouts_and_consistent_labels(tree):
    root, env, _ = tree
    inet = Path(env["IMAGENET_ROOT"])
    wnids = [WNIDS[i] for i in sorted(F.CLASS_INDICES[:5])]
    assert sorted(p.name for p in (inet / "train").iterdir()) == wnids
    assert {WNIDS.index(w) for w in wnids} == {0, 1, 22, 207, 980}  # far apart: index != folder position
    # val names carry ReaL indices whose (timm) label sets hold the folder's class; Shankar agrees
    real = read_real_labels(timm_info("imagenet_real_labels.json"))
    shankar = read_shankar(inet / "shankar" / "human_accuracy_v3.0.0.json", WNIDS)
    val = sorted((inet / "val").glob("*/*.JPEG"))
    assert len(val) == 10 and all(p.name.startswith("ILSVRC2012_val_") for p in val)
    for p in val:
        assert WNIDS.index(p.parent.name) in real[val_index(p)]
        assert WNIDS.index(p.parent.name) in shankar.correct[val_index(p)]
    assert len(shankar.problematic) == 1 and len(shankar.correct) == 10  # the non-val entry is skipped
    # V2: label = int(folder), including '207' < '22' as strings
    v2 = list_int_folders(inet / "imagenetv2" / "imagenetv2-top-images-format-val")
    assert sorted({y for _, y in v2}) == [0, 1, 22, 207, 980] and all(p.suffix == ".jpeg" for p, _ in v2)
    # VOC boxes of the val images, inside their images
    xml = sorted(Path(env["IMAGENET_VAL_BOXES"]).glob("*.xml"))
    assert [x.stem for x in xml] == sorted(p.stem for p in val)
    (w, h), objs = read_voc_boxes(xml[0])
    assert len(objs) == 1 and objs[0][0] in wnids and 1 <= objs[0][1][0] < objs[0][1][2] <= w
    # the clean list names train files; the extra folder holds wnids outside the 1k
    clean = Path(env["RELABEL_CLEAN_LIST"]).read_text().split()
    train_names = {p.name for p in (inet / "train").glob("*/*.JPEG")}
    assert clean and set(clean) < train_names
    assert not {p.name for p in Path(env["IMAGENET21K_ROOT"]).iterdir()} & set(WNIDS)


def test_images_carry_their_class(tree):
    """A model can learn something: the mean colour of the image centre (where the object is), nearest class
    centroid of train, names the class of val and ImageNetV2 images (chance: 20%)."""
    _, env, _ = tree
    inet = Path(env["IMAGENET_ROOT"])

    def centre(p):
        a = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)
        h, w = a.shape[:2]
        return a[h // 3:2 * h // 3, w // 3:2 * w // 3].reshape(-1, 3).mean(0)
    train = sorted((inet / "train").glob("*/*.JPEG"))
    x, y = np.stack([centre(p) for p in train]), np.array([WNIDS.index(p.parent.name) for p in train])
    classes = np.unique(y)
    centroids = np.stack([x[y == c].mean(0) for c in classes])
    test = [(p, WNIDS.index(p.parent.name)) for p in (inet / "val").glob("*/*.JPEG")]
    test += list_int_folders(inet / "imagenetv2" / "imagenetv2-matched-frequency-format-val")
    pred = classes[((np.stack([centre(p) for p, _ in test])[:, None] - centroids) ** 2).sum(-1).argmin(1)]
    assert np.mean(pred == np.array([t for _, t in test])) >= 0.8


def test_official_release_format_and_signal(tree):
    root, env, _ = tree
    official = Path(env["RELABEL_OFFICIAL_MAPS"])
    train = sorted((Path(env["IMAGENET_ROOT"]) / "train").glob("*/*.JPEG"))
    pts = sorted(official.glob("*/*.pt"))
    assert [p.relative_to(official).with_suffix("").as_posix() for p in pts] == \
        [p.relative_to(p.parents[1]).with_suffix("").as_posix() for p in train]
    hits = 0
    for p in pts:
        t = torch.load(p, map_location="cpu", weights_only=True)
        assert t.shape == (2, 5, 15, 15) and t.dtype == torch.float32
        assert torch.equal(t[1], t[1].round()) and (t[0][:-1] >= t[0][1:]).all()  # whole ids, best first
        assert (t[1].sort(0).values[1:] != t[1].sort(0).values[:-1]).all()  # 5 distinct classes per cell
        label = WNIDS.index(p.parent.name)
        hits += (t[1, 0, 7, 7] == label).item()  # the object sits near the image centre
    assert hits > 0.8 * len(pts)


def test_dataroots_full_finds_every_set(tree):
    _, env, _ = tree
    roots = E.DataRoots.full(env["IMAGENET_ROOT"])
    E.check_data(E.NAMES, roots)  # raises DatasetMissing for any set the evaluators need
    assert roots.imagenet_c is not None  # pre-rendered, not generated on the fly
    assert sorted(p.name for p in roots.imagenet_c.iterdir()) == sorted(E.CORRUPTIONS)
    assert len(json.loads((roots.bgc / "in_to_in9.json").read_text())) == 1000


def test_eval_real_cli_on_the_fake_tree(tree, ckpt, tmp_path):
    _, env, _ = tree
    records = tmp_path / "full.jsonl"
    out = _run("eval_real/run.py", "--ckpt", str(ckpt), "--scale", "full", "--data-root", env["IMAGENET_ROOT"],
               "--input-size", "64", "--no-progress", "--records", str(records))
    assert out.returncode == 0, out.stderr
    recs = {r["evaluator"]: r for r in R.read(records)}
    assert list(recs) == ["val", "v2-top-images", "v2-matched-frequency", "v2-threshold0.7", "real", "shankar"]
    assert all(r["scale"] == "full" for r in recs.values())
    assert recs["val"]["dataset"]["size"] == 10 and recs["v2-top-images"]["dataset"]["size"] == 10
    assert recs["real"]["metrics"]["n_scored"] == 10 and recs["shankar"]["metrics"]["n_scored"] == 9


def test_robustness_cli_on_the_fake_tree(tree, ckpt, tmp_path):
    _, env, _ = tree
    records = tmp_path / "full.jsonl"
    out = _run("robustness/run.py", "--ckpt", str(ckpt), "--scale", "full", "--data-root", env["IMAGENET_ROOT"],
               "--input-size", "64", "--no-progress", "--records", str(records))
    assert out.returncode == 0, out.stderr
    recs = {r["evaluator"]: r for r in R.read(records)}
    assert list(recs) == ["fgsm", "imagenet-a", "imagenet-c", "bgc"]
    assert recs["imagenet-a"]["dataset"]["size"] == 6 and recs["imagenet-a"]["metrics"]["n_subset_classes"] == 200
    c = recs["imagenet-c"]
    assert c["config"]["c_source"] == "pre-rendered" and len(c["metrics"]["acc"]) == 15
    assert c["dataset"]["images_per_cell"] == 5
    assert recs["bgc"]["metrics"]["n_foregrounds"] == 18 and recs["bgc"]["metrics"]["n_backgrounds"] == 18


def test_official_import_reads_the_fake_release(tree, tmp_path):
    _, env, _ = tree
    train = Path(env["IMAGENET_ROOT"]) / "train"
    paths = sorted(p.relative_to(train).as_posix() for p in train.glob("*/*.JPEG"))
    store = import_official(env["RELABEL_OFFICIAL_MAPS"], tmp_path / "store", image_paths=paths,
                            score_dtype="float32", progress=False)
    assert len(store) == len(paths) == 30 and store.meta.grid == (15, 15) and store.meta.k == 5
    t = torch.load(Path(env["RELABEL_OFFICIAL_MAPS"]) / paths[7].replace(".JPEG", ".pt"), weights_only=True)
    s, idx = store.read(paths[7])
    np.testing.assert_array_equal(s, t[0].numpy())
    np.testing.assert_array_equal(idx, t[1].long().numpy())


def test_full_scale_pretraining_inputs_from_the_env(tree, monkeypatch):
    """The env vars the CLI prints are the ones `pretrain/config.get_config('full')` reads."""
    _, env, _ = tree
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from pretrain import artifacts as A
    from pretrain.config import get_config
    cfg = get_config("full")
    boxes, sizes, _ = A.val_boxes(cfg)
    assert len(boxes) == len(sizes) == 10
    assert 0 < len(A.clean_list(cfg)) < 30
    assert A.extra_dir(cfg) == Path(env["IMAGENET21K_ROOT"])


def test_full_scale_official_store_holds_float32(tree, monkeypatch):
    """Issue #14 item 5: the imported official maps behind `default-float32-k5` are float32, not 8-bit."""
    _, env, _ = tree
    for k in ("IMAGENET_ROOT", "RELABEL_OFFICIAL_MAPS"):
        monkeypatch.setenv(k, env[k])
    from pretrain import artifacts as A
    from pretrain.config import get_config
    store, _ = A.label_store(get_config("full"))  # the official import, as a full-scale ReLabel row builds it
    assert store.meta.score_dtype == "float32" and len(store) == 30
    path = store.paths[3]
    t = torch.load(Path(env["RELABEL_OFFICIAL_MAPS"]) / path.replace(".JPEG", ".pt"), weights_only=True)
    np.testing.assert_array_equal(store.read(path)[0], t[0].numpy())


def test_full_scale_training_labels_are_imagenet_indices(tree, monkeypatch):
    """Issue #14 item 3: a train image's label is its wnid's ImageNet index, not its folder's sorted position."""
    _, env, _ = tree
    monkeypatch.setenv("IMAGENET_ROOT", env["IMAGENET_ROOT"])
    from pretrain import artifacts as A
    from pretrain.config import get_config
    _, samples = A.train_samples(get_config("full"))
    assert {WNIDS.index(s.path.split("/")[0]) == s.label for s in samples} == {True}


def test_coco_layout_reads_as_coco_2017(tree):
    _, env, _ = tree
    from multilabel_coco.data import read_split
    coco = Path(env["COCO_ROOT"])
    for split, n in (("train2017", 8), ("val2017", 4)):
        s = read_split(coco / split, coco / "annotations" / f"instances_{split}.json")
        assert len(s.paths) == n and s.num_classes == 80 and s.targets.sum(1).min() >= 1
        assert s.cat_ids[-1] == 90 and s.class_names[0] == "person"


def test_cli_prints_export_lines(tmp_path):
    out = _run("-m", "relabel.data.fakefull", "--out", str(tmp_path / "t"), "--classes", "2",
               "--train-per-class", "1", "--c-corruptions", "fog")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == [f"export {k}" for k in (
        "IMAGENET_ROOT", "RELABEL_OFFICIAL_MAPS", "RELABEL_CLEAN_LIST", "IMAGENET_VAL_BOXES", "IMAGENET21K_ROOT",
        "COCO_ROOT")]
    assert f"export IMAGENET_ROOT={tmp_path / 't' / 'imagenet'}" in lines
    assert [p.name for p in (tmp_path / "t" / "imagenet" / "imagenet-c").iterdir()] == ["fog"]



def test_cli_errors_are_one_sentence(tmp_path, capsys):
    assert F.main(["--out", str(tmp_path / "u"), "--classes", "0"]) == 1
    assert capsys.readouterr().err == "error: classes must be 1..10, got 0.\n"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my data")
    assert F.main(["--out", str(tmp_path / "mine")]) == 1
    assert "is not a fake tree made by relabel.data.fakefull" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "my data"

"""FKD's crop-level soft labels (relabel/labels/fkd.py): the store's round trip and checks, the crop a training item
replays, and a 2-step training run on them."""
import json

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from relabel import train as TR
from relabel.labels.fkd import CropLabelStore, CropReplaySet, build_crop_store, pixel_box
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, ResumableSampler, TrainSet, load_rgb, train_transform
from relabel.store import LabelStoreError, LabelStoreMismatch, file_sizes
from tests.test_train import TINY, _folder

R, K = 5, 2


def _built(tmp_path, n=16, hflip=0.5):
    samples = _folder(tmp_path / "data", n=n)
    paths = [s.path for s in samples]
    torch.manual_seed(0)
    model = TR.create_model(TR.TrainConfig(**TINY)).eval()
    job = build_crop_store(tmp_path / "crops", model, tmp_path / "data", paths,
                           file_sizes(tmp_path / "data", paths), crops=R, k=K, num_classes=4, input_size=24,
                           crop_scale=(0.3, 1.0), hflip=hflip, batch_size=7, progress=False)
    return samples, model, job


def test_store_round_trip_holds_the_annotators_top_k_of_each_stored_crop(tmp_path):
    samples, model, job = _built(tmp_path)
    paths = [s.path for s in samples]
    assert job["images"] == 16 and job["crops"] == 16 * R
    assert [p.name for p in tmp_path.iterdir()] != [] and not list(tmp_path.glob(".crops.tmp-*"))  # renamed in
    store = CropLabelStore.open(tmp_path / "crops", dataset_paths=paths,
                                dataset_sizes=file_sizes(tmp_path / "data", paths))
    assert (len(store), store.crops, store.k, store.num_classes) == (16, R, K, 4)
    rows = store.rows(paths)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    flips = []
    for i in (0, 5, 11):
        img = load_rgb(tmp_path / "data" / paths[i])
        for j in range(R):
            box, flipped = store.crop(rows[i], j)
            flips.append(flipped)
            assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1
            view = TF.resized_crop(img, *pixel_box(box, img.width, img.height), [24, 24],
                                   InterpolationMode.BICUBIC, antialias=True)
            view = TF.hflip(view) if flipped else view
            with torch.no_grad():
                p = torch.softmax(model(((TF.to_tensor(view) - mean) / std)[None]), 1)[0]
            top = p.topk(K)
            soft = store.soft_label(rows[i], j)
            assert torch.allclose(soft.sum(), torch.tensor(1.0), atol=1e-3)
            assert torch.allclose(soft[top.indices], top.values, atol=2e-3)  # float16 probabilities
            rest = [c for c in range(4) if c not in top.indices.tolist()]  # the mass left, spread evenly
            assert torch.allclose(soft[rest], torch.full((4 - K,), (1 - float(top.values.sum())) / (4 - K)),
                                  atol=2e-3)
    assert any(flips) and not all(flips)  # hflip 0.5: both kinds stored


def test_store_refuses_another_dataset_and_an_existing_path(tmp_path):
    samples, model, _ = _built(tmp_path, n=8)
    paths = [s.path for s in samples]
    with pytest.raises(LabelStoreMismatch, match="rebuild the store for this dataset"):
        CropLabelStore.open(tmp_path / "crops", dataset_paths=paths[1:],
                            dataset_sizes=file_sizes(tmp_path / "data", paths[1:]))
    with pytest.raises(LabelStoreError, match="exists; delete it"):
        build_crop_store(tmp_path / "crops", model, tmp_path / "data", paths, None, crops=R, k=K, num_classes=4,
                         input_size=24, progress=False)
    meta = json.loads((tmp_path / "crops" / "meta.json").read_text())
    (tmp_path / "crops" / "meta.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(LabelStoreError, match="not a complete crop-label store"):
        CropLabelStore.open(tmp_path / "crops")


def test_a_training_item_replays_the_stored_crop_and_its_label(tmp_path):
    samples, _, _ = _built(tmp_path)
    store = CropLabelStore.open(tmp_path / "crops")
    base = TrainSet(tmp_path / "data", samples, train_transform(16, (0.3, 1.0), color_jitter=0.0, hflip=0.5), seed=3,
                    rows=store.rows([s.path for s in samples]))
    ds = CropReplaySet(base, store)
    seen = {i: set() for i in range(len(ds))}
    for epoch in range(R):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            x, box, flipped, label, row, soft = ds[i]
            j = ds.crop_index(i)
            seen[i].add(j)
            want_box, want_flip = store.crop(row, j)
            assert torch.equal(box, torch.from_numpy(want_box)) and flipped == want_flip
            assert torch.equal(soft, store.soft_label(row, j)) and label == samples[i].label
            img = load_rgb(tmp_path / "data" / samples[i].path)
            crop = TF.resized_crop(img, *pixel_box(want_box, img.width, img.height), [16, 16])
            crop = TF.hflip(crop) if want_flip else crop
            assert torch.equal(x.pixels, TF.pil_to_tensor(crop))  # the stored crop's pixels, nothing else
    assert all(s == set(range(R)) for s in seen.values())  # R epochs replay every stored crop once


def test_two_training_steps_on_fkd_labels_use_the_stored_soft_labels(tmp_path, monkeypatch):
    samples, _, _ = _built(tmp_path, n=32)
    store = CropLabelStore.open(tmp_path / "crops")
    ds = TrainSet(tmp_path / "data", samples, train_transform(16, (0.3, 1.0), color_jitter=0.0), seed=0,
                  rows=store.rows([s.path for s in samples]))
    targets, real_ce = [], TR.soft_cross_entropy
    monkeypatch.setattr(TR, "soft_cross_entropy", lambda logits, t: (targets.append(t.clone()), real_ce(logits, t))[1])
    cfg = TR.TrainConfig(**TINY).replace(label="fkd", max_steps=2)
    res = TR.train(cfg, ds, tmp_path / "wd", store=store, progress=False)
    assert res.steps == 2 and res.teacher_forwards == 0
    assert all(torch.isfinite(p).all() for p in res.model.state_dict().values() if p.is_floating_point())
    sampler = ResumableSampler(len(ds), cfg.batch_size, cfg.seed)
    replay = CropReplaySet(ds, store)
    for step, t in enumerate(targets):
        sampler.set_position(0, step)
        batch = list(sampler)[:cfg.batch_size]
        want = torch.stack([store.soft_label(ds.rows[i], replay.crop_index(i)) for i in batch])
        assert torch.equal(t, want), f"step {step}: the loss did not get the stored crops' soft labels"
    with pytest.raises(ValueError, match="needs a crop-label store"):
        TR.train(cfg, ds, tmp_path / "x", progress=False)


def test_replay_finds_each_samples_row_by_path_and_refuses_a_store_of_other_crops(tmp_path):
    """A TrainSet built without `rows` (-1 for all) still replays each image's own crops, not the last image's; a
    store drawn at another crop scale or flip probability than the recipe's is refused."""
    samples, _, _ = _built(tmp_path)
    store = CropLabelStore.open(tmp_path / "crops")
    shuffled = samples[::-1]
    ds = CropReplaySet(TrainSet(tmp_path / "data", shuffled, train_transform(16, (0.3, 1.0), 0.0, 0.5), seed=1),
                       store)
    want = store.rows([s.path for s in shuffled])
    assert [ds[i][4] for i in range(len(ds))] == want.tolist() and len(set(want.tolist())) == len(samples)
    for scale, flip in (((0.08, 1.0), 0.5), ((0.3, 1.0), 0.0)):
        with pytest.raises(LabelStoreMismatch, match="build the store for it"):
            CropReplaySet(TrainSet(tmp_path / "data", samples, train_transform(16, scale, 0.0, flip), seed=1), store)


def test_a_build_sweeps_the_temporary_folders_of_dead_builds_only(tmp_path):
    import os
    import subprocess
    import sys
    samples, model, _ = _built(tmp_path, n=4)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead, live = tmp_path / f".again.tmp-{int(gone.stdout)}", tmp_path / f".again.tmp-{running.pid}"
        for d in (dead, live, tmp_path / ".again.tmp-notapid"):
            d.mkdir()
        build_crop_store(tmp_path / "again", model, tmp_path / "data", [s.path for s in samples], None, crops=2,
                         k=K, num_classes=4, input_size=24, progress=False)
        assert not dead.exists() and live.exists() and (tmp_path / ".again.tmp-notapid").exists()
        assert (tmp_path / "again" / "meta.json").exists() and not (tmp_path / f".again.tmp-{os.getpid()}").exists()
    finally:
        running.kill()
        running.wait()

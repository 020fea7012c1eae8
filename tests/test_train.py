"""The one trainer: finished runs, CutMix label mixing, label sources reaching the loss, loss definitions.

Exact resume after a kill: tests/test_resume.py."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from relabel import train as TR
from relabel.loader import DataWait, ResumableSampler, Sample, TrainSet, train_transform
from relabel.pooling import relabel_target
from relabel.store import LabelMapStore

TINY = dict(model="resnet18", model_kwargs={"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8},
            num_classes=4, input_size=16, epochs=2, batch_size=8, lr=0.05, warmup_epochs=0.5, ckpt_every=2,
            color_jitter=0.0)


def _folder(root: Path, n=32, classes=4, size=20, write=True):
    """n random images in `classes` class folders under root (write=False: only their samples)."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        rel = f"c{i % classes}/img{i:03d}.png"
        if write:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / rel)
        samples.append(Sample(rel, i % classes))
    return samples


def _store(root: Path, samples, k=2, grid=(3, 3)):
    rng = np.random.default_rng(1)
    paths = [s.path for s in samples]
    w = LabelMapStore.create(root / "store", paths, num_classes=4, k=k, grid=grid, score_dtype="float16")
    scores = rng.normal(size=(len(paths), k, *grid)).astype(np.float32)
    idx = np.stack([rng.permutation(4)[:k] for _ in range(len(paths) * grid[0] * grid[1])])
    idx = idx.reshape(len(paths), *grid, k).transpose(0, 3, 1, 2)
    w.write(w.rows(paths), scores, idx)
    return w.finalize()


def test_finished_run_is_not_retrained_and_config_change_is_refused(tmp_path):
    samples = _folder(tmp_path / "data")
    ds = TrainSet(tmp_path / "data", samples, train_transform(16, color_jitter=0.0), seed=0)
    cfg = TR.TrainConfig(**TINY)
    first = TR.train(cfg, ds, tmp_path / "wd", progress=False)
    again = TR.train(cfg, ds, tmp_path / "wd", progress=False)
    assert again.steps == first.steps == 8
    assert all(torch.equal(p, q) for p, q in zip(first.model.state_dict().values(),
                                                 again.model.state_dict().values()))
    with pytest.raises(RuntimeError, match="another config"):
        TR.train(cfg.replace(lr=0.1), ds, tmp_path / "wd", progress=False)


def _pooled_targets_of_step(ds, samples, store, cfg, step):
    """Step `step`'s LabelPooling targets and labels, recomputed apart from the trainer: the batch from the
    sampler, each crop box from the dataset, each map from `store.read` of the image's path."""
    sampler = ResumableSampler(len(ds), cfg.batch_size, cfg.seed)
    epoch, batch = divmod(step, sampler.batches_per_epoch)
    sampler.set_position(epoch, batch)
    ds.set_epoch(epoch)
    batch = list(sampler)[:cfg.batch_size]
    _x, boxes, flips, labels, _rows = default_collate([ds[i] for i in batch])
    maps = [store.read(samples[i].path, rank_order=False) for i in batch]
    scores, indices = (torch.from_numpy(np.stack(m)) for m in zip(*maps))
    return relabel_target(scores, indices, boxes, cfg.num_classes, variant=cfg.relabel_variant, flips=flips,
                          labels=labels, official=cfg.official_pooling), labels


def test_relabel_and_kd_label_sources_train(tmp_path, monkeypatch):
    samples = _folder(tmp_path / "data")
    store = _store(tmp_path, samples)
    ds = TrainSet(tmp_path / "data", samples, train_transform(16, color_jitter=0.0), seed=0,
                  rows=store.rows([s.path for s in samples]))
    # Spies on CutMix's input / output and on the loss's target: the pooled targets of each batch must enter
    # CutMix, and what CutMix returns must be what the loss is computed against.
    seen = {"pooled": [], "mixed": [], "loss": []}
    real_cutmix, real_ce = TR.cutmix, TR.soft_cross_entropy

    def cutmix_spy(x, target, beta, g):
        x, mixed, lam = real_cutmix(x, target, beta, g)
        seen["pooled"].append(target.clone())
        seen["mixed"].append(mixed.clone())
        return x, mixed, lam

    def loss_spy(logits, target):
        seen["loss"].append(target.detach().clone())
        return real_ce(logits, target)

    monkeypatch.setattr(TR, "cutmix", cutmix_spy)
    monkeypatch.setattr(TR, "soft_cross_entropy", loss_spy)
    for variant in ("localized_multi", "localized_single", "global_multi", "global_single", "mix"):
        for v in seen.values():
            v.clear()
        cfg = TR.TrainConfig(**TINY).replace(label="relabel", relabel_variant=variant, epochs=1, cutmix_prob=1.0)
        res = TR.train(cfg, ds, tmp_path / variant, store=store, progress=False)
        assert res.steps == 4
        assert len(seen["pooled"]) == len(seen["loss"]) == 4, variant
        for step in range(4):
            want, labels = _pooled_targets_of_step(ds, samples, store, cfg, step)
            assert not torch.equal(want, TR.onehot_target(labels, cfg.num_classes))  # the maps say something else
            assert torch.allclose(seen["pooled"][step], want, atol=1e-6), \
                f"{variant}, step {step}: the targets are not the LabelPooling of the batch's maps over its crops"
            assert torch.equal(seen["loss"][step], seen["mixed"][step]), \
                f"{variant}, step {step}: the loss did not get CutMix's mixed targets"
    teacher = TR.create_model(TR.TrainConfig(**TINY)).eval()
    cfg = TR.TrainConfig(**TINY).replace(label="kd", epochs=1)
    res = TR.train(cfg, ds, tmp_path / "kd", teacher=teacher, teacher_input_size=24, progress=False)
    assert res.teacher_forwards == 4 * 8  # one teacher forward per training image per step
    with pytest.raises(ValueError, match="needs a label-map store"):
        TR.train(cfg.replace(label="relabel"), ds, tmp_path / "x", progress=False)


def test_cutmix_targets_sum_to_one_and_follow_the_pasted_area():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(6, 3, 32, 32)
    x[3:] = 1.0
    target = torch.softmax(torch.randn(6, 10), 1)
    for _ in range(20):
        mixed, t, lam = TR.cutmix(x, target, 1.0, g)
        assert torch.allclose(t.sum(1), torch.ones(6), atol=1e-6)
        kept = 1.0 - (mixed != x).float().mean((1, 2, 3))  # fraction of each image that was not replaced
        changed = (mixed != x).any(1).any(1).any(1)
        assert torch.allclose(kept[changed], torch.full_like(kept[changed], lam), atol=1e-6)


def test_soft_cross_entropy_equals_torch_ce_with_smoothing():
    logits, labels = torch.randn(5, 7), torch.tensor([0, 3, 6, 2, 2])
    for eps in (0.0, 0.1):
        ours = TR.soft_cross_entropy(logits, TR.onehot_target(labels, 7, eps))
        assert torch.allclose(ours, torch.nn.functional.cross_entropy(logits, labels, label_smoothing=eps))


def test_sampler_resume_and_ranks_partition_the_batch():
    full = ResumableSampler(40, 8, seed=3)
    order = list(full)
    full.set_position(0, 2)
    assert list(full) == order[16:]
    ranks = [ResumableSampler(40, 8, seed=3, rank=r, world=2) for r in (0, 1)]
    batches = [list(r) for r in ranks]
    for b in range(5):
        assert sorted(batches[0][4 * b:4 * b + 4] + batches[1][4 * b:4 * b + 4]) == sorted(order[8 * b:8 * b + 8])
    with pytest.raises(ValueError, match="not divisible"):
        ResumableSampler(40, 8, seed=0, world=3)


def test_unknown_config_option_is_an_error():
    with pytest.raises(ValueError, match="unknown TrainConfig option"):
        TR.TrainConfig().replace(learning_rate=0.1)


def test_finish_on_the_device_trains_the_same_model_and_the_wait_is_reported(tmp_path, capsys):
    """finish_on='device' (the 8-bit batch finished in the trainer after the copy, the GPU path) and 'loader' (in the
    collate) train bit-identical models: where `finish` runs enters no recipe; the result carries the data wait."""
    samples = _folder(tmp_path / "data", n=16)
    cfg = TR.TrainConfig(**{**TINY, "color_jitter": 0.4, "hflip": 0.5})
    states = []
    for where in ("loader", "device"):
        ds = TrainSet(tmp_path / "data", samples, TR.train_transform_for(cfg), seed=0)
        res = TR.train(cfg, ds, tmp_path / where, progress=False, finish_on=where)
        states.append(res.model.state_dict())
        assert 0.0 < res.data_wait_fraction < 1.0 and res.data_wait_s > 0
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    with pytest.raises(TR.ConfigError, match="finish_on must be one of auto, loader, device, got 'gpu'"):
        TR.finish_on_device("gpu", torch.device("cpu"))
    assert TR.finish_on_device("auto", torch.device("cuda")) and not TR.finish_on_device("auto", torch.device("cpu"))


def test_a_loader_that_holds_the_step_back_warns_once(monkeypatch):
    clock = iter(range(10**6))
    monkeypatch.setattr(TR.time, "perf_counter", lambda: float(next(clock)))
    waits = DataWait(workers=3)
    it = waits.timed(range(40))
    msgs = []
    for i, _ in enumerate(it):  # each next() takes 1 tick of wait; each step 2 ticks in all (1 waiting)
        if i % 10 == 9:
            wait_ms, step_ms = waits.interval()
            assert (wait_ms, step_ms) == (1000.0, 2000.0)
            if waits.warn(wait_ms, step_ms):
                msgs.append(waits.warning(wait_ms, step_ms))
    assert len(msgs) == 1 and "1000 ms of each 2000 ms step (50%)" in msgs[0] and "3 loader workers" in msgs[0]


def test_in_process_loading_on_a_cpu_never_warns_but_a_gpu_or_workers_do(monkeypatch):
    """Item 2 of issue 27's follow-up: a mini run (workers=0 on a CPU) makes each batch and then its step on the same
    cores, so its wait is no stall and must not warn on every run; workers or a GPU can be held back and do. The
    wait is counted either way (it goes into the record's data_wait_fraction)."""
    def run(workers, device):
        clock = iter(range(10**6))
        monkeypatch.setattr(TR.time, "perf_counter", lambda: float(next(clock)))
        waits = DataWait(workers, device)
        warned = 0
        for i, _ in enumerate(waits.timed(range(40))):  # half of every step waits for data
            if i % 10 == 9:
                warned += waits.warn(*waits.interval())
        return warned, waits.total_s
    assert run(0, torch.device("cpu")) == (0, 40.0)
    assert run(0, torch.device("cuda")) == (1, 40.0)  # a device object only: no GPU needed
    assert run(2, torch.device("cpu")) == (1, 40.0)

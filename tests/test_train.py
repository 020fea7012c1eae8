"""The one trainer: exact kill-and-resume, CutMix label mixing, label sources, loss definitions."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from relabel import train as TR
from relabel.loader import ResumableSampler, Sample, TrainSet, train_transform
from relabel.store import LabelMapStore

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="resnet18", model_kwargs={"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8},
            num_classes=4, input_size=16, epochs=2, batch_size=8, lr=0.05, warmup_epochs=0.5, ckpt_every=2,
            color_jitter=0.0)


def _folder(root: Path, n=32, classes=4, size=20):
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        rel = f"c{i % classes}/img{i:03d}.png"
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


SCRIPT = textwrap.dedent("""
    import sys, torch
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from tests.test_train import TINY, _folder
    from relabel import train as TR
    from relabel.loader import TrainSet, train_transform
    data = Path({data!r}); samples = _folder(data)
    cfg = TR.TrainConfig(**TINY)
    ds = TrainSet(data, samples, train_transform(16, color_jitter=0.0), seed=0)
    res = TR.train(cfg, ds, {wd!r}, progress=False)
    torch.save(res.model.state_dict(), Path({wd!r}) / "final_weights.pt")
""")


def _run(tmp_path, wd, die=None):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    if die:
        env["RELABEL_DIE_AFTER_STEP"] = str(die)
    code = SCRIPT.format(root=str(ROOT), data=str(tmp_path / "data"), wd=str(wd))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_kill_and_resume_gives_identical_weights(tmp_path):
    straight = _run(tmp_path, tmp_path / "a")
    assert straight.returncode == 0, straight.stderr
    killed = _run(tmp_path, tmp_path / "b", die=4)  # SIGKILL right after step 4's checkpoint (of 8)
    assert killed.returncode == -9
    assert not (tmp_path / "b" / "final_weights.pt").exists()
    resumed = _run(tmp_path, tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "a" / "final_weights.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "final_weights.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == 8


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


def test_relabel_and_kd_label_sources_train(tmp_path):
    samples = _folder(tmp_path / "data")
    store = _store(tmp_path, samples)
    ds = TrainSet(tmp_path / "data", samples, train_transform(16, color_jitter=0.0), seed=0,
                  rows=store.rows([s.path for s in samples]))
    for variant in ("localized_multi", "localized_single", "global_multi", "global_single", "mix"):
        cfg = TR.TrainConfig(**TINY).replace(label="relabel", relabel_variant=variant, epochs=1, cutmix_prob=1.0)
        res = TR.train(cfg, ds, tmp_path / variant, store=store, progress=False)
        assert res.steps == 4
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

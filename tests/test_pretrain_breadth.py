"""Pretraining breadth (issue 8): every Table 4 architecture trains, the EfficientNet recipe's timm augmentations,
KD's loss and cost accounting, the annotator ladder, the class-balanced extra data and the registry coverage."""
import math

import numpy as np
import pytest
import torch

from pretrain import artifacts as A
from pretrain import experiments as X
from pretrain.config import (ANNOTATORS, ARCHS, ROWS, annotator_config, apply_set, arch_model, get_config,
                             target_config)
from relabel import launch
from relabel import train as TR
from relabel.costs import model_stats, training_cost
from relabel.loader import Sample, TrainSet
from relabel.store import LabelMapStore
from results import tables as T
from tests.test_train import _folder, _store

TABLE4_ARCHS = [r.key for r in T.TABLE4.rows]


def test_table4_rows_are_the_configured_architectures():
    assert set(TABLE4_ARCHS) <= set(ARCHS)
    for scale in ("mini", "full"):
        for arch in TABLE4_ARCHS:
            name, _ = arch_model(arch, scale)
            assert arch.split("_")[0] in name  # the same timm family at both scales
    with pytest.raises(KeyError, match="unknown architecture 'resnet5'"):
        arch_model("resnet5", "mini")


@pytest.mark.parametrize("row", ["original", "relabel"])
@pytest.mark.parametrize("arch", TABLE4_ARCHS)
def test_every_table4_architecture_builds_and_trains_two_steps(tmp_path, arch, row):
    """The mini config of each Table 4 row (its recipe included: AdamP, RandAugment, Mixup, erasing for
    EfficientNet) runs two CPU steps on tiny data, with finite outputs of the right shape."""
    samples = _folder(tmp_path / "data", n=16, size=24)
    cfg = target_config(get_config("mini"), arch, row, seed=0).replace(
        num_classes=4, input_size=32, batch_size=8, max_steps=2, warmup_epochs=0.0, ckpt_every=100)
    store = _store(tmp_path, samples) if row == "relabel" else None
    ds = TrainSet(tmp_path / "data", samples, TR.train_transform_for(cfg), seed=0,
                  rows=store.rows([s.path for s in samples]) if store else None)
    res = TR.train(cfg, ds, tmp_path / "wd", store=store, progress=False)
    assert res.steps == 2 and res.images_seen == 16
    with torch.no_grad():
        out = res.model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    stats = model_stats(res.model, 32)
    assert stats["params_m"] > 0 and stats["gflops"] > 0


def test_set_may_replace_the_models_kwargs():
    # `--set model_kwargs=...` (a pilot of another model shape) used to fail with a TypeError in target_config
    kw = {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_width": 8, "stem_type": "deep"}
    cfg = apply_set(get_config("mini"), {"model_kwargs": kw})
    t = target_config(cfg, "resnet50", "relabel", 0)
    assert t.model == "resnet50" and t.model_kwargs == kw and t.label == "relabel"  # the row still applies
    assert target_config(get_config("mini"), "resnet50", "relabel", 0).model_kwargs == arch_model("resnet50", "mini")[1]
    assert TR.create_model(t).conv1[0].out_channels == 8  # timm's deep stem: 3→8→8→16


def test_efficientnet_rows_follow_the_papers_recipe():
    cfg = get_config("mini")
    for arch in ("efficientnet_b0", "efficientnet_b3"):
        for row in ("original", "relabel"):  # App. D.2: the same recipe for vanilla and ReLabel
            t = target_config(cfg, arch, row, 0)
            assert (t.optimizer, t.lr, t.weight_decay, t.drop_rate, t.drop_path) == ("adamp", 2e-3, 1e-2, 0.2, 0.2)
            assert t.randaugment and t.mixup_alpha > 0 and t.random_erasing > 0
    full = target_config(get_config("full"), "efficientnet_b3", "relabel", 0)
    assert (full.model, full.epochs, full.batch_size, full.input_size) == ("efficientnet_b3", 400, 512, 300)
    # B0 → B3 grow in size at mini scale too
    sizes = [model_stats(TR.create_model(target_config(cfg, a, "original", 0)), 48)["gflops"]
             for a in ("efficientnet_b0", "efficientnet_b3")]
    assert sizes[0] < sizes[1]


def test_timm_augmentations_are_deterministic_per_sample_and_keep_the_box():
    """RandAugment/RandomErasing draw from Python's/NumPy's RNGs; seeded from torch's, a resumed run sees the
    same augmentation (TrainSet seeds torch per (seed, epoch, index))."""
    from PIL import Image
    cfg = TR.TrainConfig(input_size=32, randaugment="rand-m9-mstd0.5", random_erasing=1.0, color_jitter=0.0,
                         hflip=0.0)
    t = TR.train_transform_for(cfg)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(t(img))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    torch.manual_seed(8)
    assert not torch.equal(t(img)[0], outs[0][0])
    assert outs[0][0].shape == (3, 32, 32)


def test_mixup_mixes_soft_targets_with_the_reversed_batch():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2).clone()
    target = torch.softmax(torch.randn(4, 5), 1)
    xm, tm = TR.mixup(x, target, alpha=0.2, seed=3)
    lam = float(xm[0, 0, 0, 0] - x[3, 0, 0, 0]) / float(x[0, 0, 0, 0] - x[3, 0, 0, 0])
    assert torch.allclose(xm, lam * x + (1 - lam) * x.flip(0))
    assert torch.allclose(tm, lam * target + (1 - lam) * target.flip(0))
    assert torch.allclose(tm.sum(1), torch.ones(4))
    assert torch.equal(TR.mixup(x, target, 0.2, 3)[1], tm)  # same step, same λ (exact resume)
    assert torch.equal(x, torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2))  # input left untouched


class _FixedTeacher(torch.nn.Module):
    """Returns fixed logits per sample and records the input sizes it was fed."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.sizes = logits, []

    def forward(self, x):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.logits[: x.shape[0]]


def test_kd_loss_is_soft_ce_to_the_teachers_softmax_on_a_hand_case(tmp_path, monkeypatch):
    samples = _folder(tmp_path / "data", n=4, size=20)
    t_logits = torch.tensor([[2.0, 0.0, 0.0, -1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0],
                             [1.0, 1.0, 1.0, 1.0]])
    teacher = _FixedTeacher(t_logits)
    seen = []
    real = TR.soft_cross_entropy

    def spy(logits, target):
        loss = real(logits, target)
        seen.append((logits.detach().clone(), target.clone(), float(loss.detach())))
        return loss
    monkeypatch.setattr(TR, "soft_cross_entropy", spy)
    cfg = TR.TrainConfig(model="resnet18", model_kwargs={"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16),
                                                         "stem_width": 8}, num_classes=4, input_size=16,
                         batch_size=4, epochs=1, lr=0.0, warmup_epochs=0.0, label="kd", color_jitter=0.0)
    ds = TrainSet(tmp_path / "data", samples, TR.train_transform_for(cfg), seed=0)
    res = TR.train(cfg, ds, tmp_path / "wd", teacher=teacher, teacher_input_size=24, progress=False)
    assert teacher.sizes == [(24, 24)]  # the teacher gets the larger input (App. D.3), the student 16 px
    logits, target, loss = seen[0]
    e = [[math.exp(v) for v in row] for row in t_logits.tolist()]
    hand_target = [[v / sum(row) for v in row] for row in e]  # the teacher's softmax, no temperature
    assert np.allclose(target.numpy(), hand_target, atol=1e-6)
    lse = [math.log(sum(math.exp(v) for v in row)) for row in logits.tolist()]
    hand_loss = -sum(p * (s - z) for prow, srow, z in zip(hand_target, logits.tolist(), lse)
                     for p, s in zip(prow, srow)) / 4
    assert loss == pytest.approx(hand_loss, rel=1e-5)
    assert res.teacher_forwards == 4


def test_cost_accounting_counts_teacher_forwards(tmp_path):
    samples = _folder(tmp_path / "data", n=16, size=20)
    teacher = _FixedTeacher(torch.zeros(8, 4))
    cfg = TR.TrainConfig(model="resnet18", model_kwargs={"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16),
                                                         "stem_width": 8}, num_classes=4, input_size=16,
                         batch_size=8, epochs=2, lr=0.01, warmup_epochs=0.0, label="kd", color_jitter=0.0,
                         ckpt_every=2)
    ds = TrainSet(tmp_path / "data", samples, TR.train_transform_for(cfg), seed=0)
    res = TR.train(cfg, ds, tmp_path / "wd", teacher=teacher, progress=False)
    assert res.teacher_forwards == 32 == res.images_seen  # one teacher forward per training crop, 4 steps × 8
    again = TR.train(cfg, ds, tmp_path / "wd", teacher=teacher, progress=False)  # finished: read back, not rerun
    assert again.teacher_forwards == 32 and len(teacher.sizes) == 4
    cost = training_cost(res, student_gflops=0.5, teacher_gflops=2.0)
    assert cost["teacher_gflops"] == cost["label_gflops"] == 64.0
    assert cost["student_gflops"] == 3 * 32 * 0.5 and cost["total_gflops"] == 48.0 + 64.0
    assert cost["wall_s"] == res.wall_s > 0
    # ReLabel: no teacher; the annotation job (its seconds and annotator forwards) is the label cost
    plain = TR.TrainResult(res.model, 4, 10.0, 32, 0)
    cost = training_cost(plain, 0.5, annotation_s=2.0, annotated=16, annotator_gflops=3.0)
    assert (cost["wall_s"], cost["teacher_gflops"], cost["label_gflops"]) == (12.0, 0.0, 48.0)


def test_annotator_ladder_configs():
    cfg = get_config("mini")
    base = annotator_config(cfg, "default")
    assert base is cfg.annotator
    w = annotator_config(cfg, "w025").train
    assert w.model == base.train.model and w.epochs == base.train.epochs
    assert tuple(w.model_kwargs["channels"]) == tuple(c // 4 for c in base.train.model_kwargs["channels"])
    assert annotator_config(cfg, "e2").train.epochs == 2 and annotator_config(cfg, "e6").train.epochs == 6
    assert annotator_config(cfg, "e2").read_kwargs == base.read_kwargs
    with pytest.raises(KeyError, match="unknown annotator 'b7'"):
        annotator_config(cfg, "b7")
    for name in ANNOTATORS:
        if name != "default":
            assert ROWS[f"relabel_ann-{name}"].annotator == name


def test_full_scale_ladder_reads_one_checkpoint_per_name(monkeypatch):
    monkeypatch.setenv("RELABEL_ANNOTATOR_CKPT_W05", "/ckpt/b3.safetensors")
    assert annotator_config(get_config("full"), "w05").checkpoint == "/ckpt/b3.safetensors"
    monkeypatch.delenv("RELABEL_ANNOTATOR_CKPT_E2", raising=False)
    with pytest.raises(FileNotFoundError, match="RELABEL_ANNOTATOR_CKPT_E2"):
        A.annotator_checkpoint(get_config("full"), "e2")


def test_extra_data_is_relabelled_and_class_balanced(tmp_path, monkeypatch):
    """Each extra image gets the annotator's global top-1 as its label; at most extra_per_class per class are
    kept, the most confident first (the paper's balanced ImageNet-21K subset)."""
    root = tmp_path / "extra"
    paths = [f"x/img{i}.png" for i in range(6)]
    (root / "x").mkdir(parents=True)
    for p in paths:
        (root / p).write_bytes(b"0")
    w = LabelMapStore.create(tmp_path / "st", paths, num_classes=10, k=1, grid=(1, 1), score_dtype="float32")
    # global top-1 class and its logit per image: class 3 ×4 (logits 1..4), class 5 ×2
    top = [3, 3, 3, 3, 5, 5]
    logit = [1.0, 4.0, 2.0, 3.0, 1.0, 2.0]
    w.write(w.rows(paths), np.array(logit, np.float32).reshape(6, 1, 1, 1), np.array(top).reshape(6, 1, 1, 1))
    store = w.finalize()
    cfg = get_config("mini", extra_per_class=2)
    monkeypatch.setattr(A, "extra_dir", lambda cfg: root)
    monkeypatch.setattr(A, "_samples", lambda r: [Sample(p, 0) for p in paths])
    monkeypatch.setattr(A, "_store_of", lambda *a, **k: (store, 0.0))
    monkeypatch.setattr(A, "annotation_job", lambda *a, **k: {"images": 6, "seconds": 1.5})
    samples, seconds = A.extra_subset(cfg, "default")
    assert seconds == 1.5
    assert sorted((s.path, s.label) for s in samples) == [("x/img1.png", 3), ("x/img3.png", 3),
                                                          ("x/img4.png", 5), ("x/img5.png", 5)]


def test_every_breadth_cell_is_registered_with_its_evaluators():
    registry = launch.discover()
    for t in (T.TABLE4, T.TABLE5, T.FIG4, T.FIG6, T.TABLE7):
        for r in t.rows:
            for s in r.sources:
                if s and (s.experiment.startswith("pretrain/") or s.experiment.startswith("annotator/")):
                    assert s.experiment in registry, s.experiment
                    assert s.evaluator in registry[s.experiment].evaluators, (s.experiment, s.evaluator)
    assert registry["pretrain/resnet50/kd_ann-e6"].needs == ("annotator/e6",)
    assert registry["pretrain/resnet50/kd_ann-default"].needs == ("annotator",)
    assert registry["pretrain/resnet50/relabel_cutmix_extra"].needs == ("annotator",)
    for row in ("relabel_cutmix", "relabel_cutmix_extra"):  # App. D.1: AdamP lr 0.002, wd 0.01, CutMix α = 1
        t = target_config(get_config("mini"), "resnet50", row, 0)
        assert (t.optimizer, t.lr, t.weight_decay, t.cutmix_prob, t.cutmix_beta) == ("adamp", 2e-3, 1e-2, 1.0, 1.0)
    assert ROWS["relabel_cutmix_extra"].extra and not ROWS["relabel_cutmix"].extra


def test_a_run_trained_under_an_earlier_recipe_is_set_aside(tmp_path):
    """make re-runs cells whose records are stale; their old checkpoints move aside instead of blocking resume."""
    samples = _folder(tmp_path / "data", n=16, size=20)
    old = TR.TrainConfig(model="resnet18", model_kwargs={"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16),
                                                         "stem_width": 8}, num_classes=4, input_size=16,
                         batch_size=8, max_steps=1, warmup_epochs=0.0, color_jitter=0.0)
    ds = TrainSet(tmp_path / "data", samples, TR.train_transform_for(old), seed=0)
    TR.train(old, ds, tmp_path / "wd" / "train", progress=False)
    assert X.set_aside_earlier_recipe(tmp_path / "wd" / "train", old) is None  # same recipe: resumed, not moved
    new = old.replace(lr=0.05)
    with pytest.raises(RuntimeError, match="another config"):
        TR.train(new, ds, tmp_path / "wd" / "train", progress=False)
    moved = X.set_aside_earlier_recipe(tmp_path / "wd" / "train", new)
    assert moved.name.startswith("train.stale-") and (moved / "last.pt").exists()
    assert TR.train(new, ds, tmp_path / "wd" / "train", progress=False).steps == 1


def test_label_artifacts_are_named_by_their_annotators_recipe():
    """An annotator re-trained under another recipe (the launcher now sets stale runs aside and retrains) gets new
    label-map stores, extra-data subset and clean list, instead of its old maps outliving it."""
    import dataclasses
    from pretrain import artifacts as A
    from pretrain.config import get_config
    cfg = get_config("mini")
    base = A._store_path(cfg, "float32", 5)
    t = cfg.annotator.train
    longer = dataclasses.replace(cfg.annotator, train=t.replace(epochs=t.epochs + 1))
    other = dataclasses.replace(cfg, annotator=longer)
    assert A._store_path(other, "float32", 5) != base and base.name.startswith("default@")
    assert A._store_path(cfg, "float32", 5, "w025") != A._store_path(other, "float32", 5, "w025")  # variants follow
    assert A._store_path(cfg, "float32", 5, "oracle").name == "oracle-float32-k5"  # the world's masks: no annotator

"""Pretraining configs and artifacts: every row builds, derived stores hold the base's top-k, registry coverage."""
import numpy as np
import pytest
import torch

from pretrain import artifacts as A
from pretrain.config import ARCHS, ROWS, get_config, target_config
from relabel import launch
from relabel.store import LabelMapStore, file_sizes
from results import tables as T
from tests.test_train import _folder


@pytest.mark.parametrize("scale", ["mini", "full"])
def test_every_arch_and_row_has_a_config(scale):
    cfg = get_config(scale)
    for arch in ARCHS:
        for row in ROWS:
            tc = target_config(cfg, arch, row, seed=3)
            assert tc.seed == 3 and tc.num_classes == cfg.target.num_classes
    assert target_config(cfg, "resnet50", "label_smoothing", 0).label_smoothing == 0.1
    assert target_config(cfg, "resnet50", "global_single", 0).relabel_variant == "global_single"
    with pytest.raises(KeyError, match="unknown pretraining row"):
        target_config(cfg, "resnet50", "relabell", 0)
    with pytest.raises(ValueError, match="unknown PretrainConfig option"):
        get_config(scale, epochs=3)


def test_full_scale_is_the_papers_recipe():
    t = get_config("full").target
    assert (t.batch_size, t.lr, t.weight_decay, t.epochs, t.warmup_epochs, t.optimizer) == \
        (1024, 0.1, 1e-4, 300, 5.0, "nesterov")
    assert get_config("full").annotator.input_size == 475


def test_every_pretrain_cell_of_the_tables_is_registered():
    registry = launch.discover()
    needed = {s.experiment for t in (T.TABLE2, T.TABLE6) for r in t.rows for s in r.sources if s}
    needed |= {"analysis/crop_iou", "analysis/label_confidence"}
    assert needed <= set(registry), sorted(needed - set(registry))
    for t in (T.TABLE2, T.TABLE6):
        for r in t.rows:
            for s in r.sources:
                assert s.evaluator in registry[s.experiment].evaluators


def test_derived_store_holds_the_top_k_of_its_base(tmp_path):
    samples = _folder(tmp_path / "data", n=10)
    paths = [s.path for s in samples]
    sizes = file_sizes(tmp_path / "data", paths)
    rng = np.random.default_rng(0)
    w = LabelMapStore.create(tmp_path / "base", paths, num_classes=4, k=4, grid=(2, 2), sizes=sizes,
                             score_dtype="float32")
    scores = rng.normal(size=(10, 4, 2, 2)).astype(np.float32)
    idx = np.stack([rng.permutation(4) for _ in range(40)]).reshape(10, 2, 2, 4).transpose(0, 3, 1, 2)
    w.write(w.rows(paths), scores, idx)
    base = w.finalize()
    derived = A.derive_store(base, tmp_path / "d", "float16", 2, tmp_path / "data", paths)
    for p in paths[:3]:
        bs, bi = base.read(p)
        ds, di = derived.read(p)
        assert np.array_equal(di, bi[:2])  # best-first order: the two best classes at every location
        assert np.allclose(ds, bs[:2], atol=1e-2)


def test_oracle_maps_are_scaled_mask_coverage_per_cell():
    import numpy as np
    from pycocotools import mask as mask_utils
    from pretrain.oracle import oracle_maps
    m = np.zeros((48, 48), np.uint8, order="F")
    m[:, :24] = 1  # class 3 fills the left half
    m2 = np.zeros((48, 48), np.uint8, order="F")
    m2[:4, 40:] = 1  # class 7: half of the top-right cell
    rle = lambda a: {**mask_utils.encode(np.asfortranarray(a)), "counts": mask_utils.encode(np.asfortranarray(a))["counts"].decode()}
    ann = {"images": [{"file": "a.png", "height": 48, "width": 48,
                       "objects": [{"class": 3, "mask": rle(m)}, {"class": 7, "mask": rle(m2)}]}]}
    maps = oracle_maps(ann, ["a.png"], 10, (6, 6), logit_scale=30.0)
    assert maps.shape == (1, 10, 6, 6)
    assert np.allclose(maps[0, 3, :, :3], 30.0) and np.allclose(maps[0, 3, :, 3:], 0.0)
    assert np.isclose(maps[0, 7, 0, 5], 15.0) and maps[0, 7].sum() == 15.0
    assert maps[0, [0, 1, 2, 4, 5, 6, 8, 9]].sum() == 0

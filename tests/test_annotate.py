"""The annotation job: a store per image folder, the map equals the annotator's view, exact resume after a kill."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from relabel.annotate import annotate, whole_image_transform
from relabel.annotator import label_map
from relabel.loader import load_rgb
from relabel.store import LabelMapStore, LabelStoreMismatch, file_sizes
from tests.test_train import _folder

ROOT = Path(__file__).resolve().parents[1]


def _model():
    torch.manual_seed(0)
    return timm.create_model("resnet18", num_classes=4, layers=(1, 1, 1, 1), channels=(8, 8, 16, 16),
                             stem_width=8).eval()


def test_store_holds_the_annotators_top_k_of_the_whole_image(tmp_path):
    samples = _folder(tmp_path / "data", n=12)
    paths = [s.path for s in samples]
    stats = annotate(_model(), tmp_path / "data", paths, tmp_path / "store", k=2, input_size=64,
                     score_dtype="float32", annotator="tiny", progress=False, batch_size=5, chunk=4)
    assert stats["images"] == 12
    sizes = file_sizes(tmp_path / "data", paths)
    store = LabelMapStore.open(tmp_path / "store", dataset_paths=paths, dataset_sizes=sizes)
    assert store.meta.grid == (2, 2) and store.meta.k == 2 and store.meta.annotator == "tiny"
    x = whole_image_transform(64)(load_rgb(tmp_path / "data" / paths[3]))[None]
    ref = label_map(_model(), x)[0].topk(2, dim=0)
    scores, idx = store.read(paths[3])
    assert torch.equal(torch.from_numpy(idx), ref.indices)
    assert np.allclose(scores, ref.values.detach().numpy(), atol=1e-5)
    with pytest.raises(LabelStoreMismatch):
        LabelMapStore.open(tmp_path / "store", dataset_paths=paths[:-1], dataset_sizes=sizes[:-1])


SCRIPT = textwrap.dedent("""
    import sys; sys.path.insert(0, {root!r})
    from tests.test_annotate import _model
    from tests.test_train import _folder
    from relabel.annotate import annotate
    from pathlib import Path
    samples = _folder(Path({data!r}), n=24)
    annotate(_model(), {data!r}, [s.path for s in samples], {store!r}, k=2, input_size=64, score_dtype="uint8",
             progress=False, batch_size=4, chunk=8)
""")


def _run(data, store, die=None):
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    if die:
        env["RELABEL_DIE_AFTER_CHUNKS"] = str(die)
    code = SCRIPT.format(root=str(ROOT), data=str(data), store=str(store))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_killed_annotation_resumes_to_the_same_store(tmp_path):
    assert _run(tmp_path / "data", tmp_path / "a").returncode == 0
    killed = _run(tmp_path / "data", tmp_path / "b", die=1)  # SIGKILL after the first of three chunks
    assert killed.returncode == -9
    assert (np.load(tmp_path / "b" / "written.npy") == 1).sum() == 8
    with pytest.raises(Exception, match="incomplete"):
        LabelMapStore.open(tmp_path / "b")
    resumed = _run(tmp_path / "data", tmp_path / "b")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("scores.npy", "indices.npy", "quant.npy", "written.npy", "paths.txt", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

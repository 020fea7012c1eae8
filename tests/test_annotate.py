"""The annotation job: a store per image folder, the map equals the annotator's view, exact resume after a kill."""
import signal
import textwrap
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from relabel.annotate import annotate, whole_image_transform
from relabel.fully_conv import label_map
from relabel.loader import load_rgb
from relabel.store import LabelMapStore, LabelStoreMismatch, file_sizes
from tests.test_resume import finish, kill_when, start, stop
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
    import sys, time; sys.path.insert(0, {root!r})
    from tests.test_annotate import _model
    from tests.test_train import _folder
    from relabel.annotate import annotate
    from relabel.store import LabelMapWriter
    from pathlib import Path
    if {pause}:  # a pause after each durable chunk: room for the test to kill the job between chunks
        flush = LabelMapWriter.flush
        LabelMapWriter.flush = lambda self: (flush(self), time.sleep({pause}))[0]
    samples = _folder(Path({data!r}), n=24, write=False)
    annotate(_model(), {data!r}, [s.path for s in samples], {store!r}, k=2, input_size=64, score_dtype="uint8",
             progress=False, batch_size=4, chunk=8)
""")


def _start(tmp_path, store, pause=0.0):
    code = SCRIPT.format(root=str(ROOT), data=str(tmp_path / "data"), store=str(store), pause=pause)
    return start(code, tmp_path / f"{Path(store).name}.log")


def _written(store: Path) -> int:
    try:
        return int(np.load(store / "written.npy", mmap_mode="r").sum())
    except (OSError, ValueError, EOFError):  # not created yet, or its header being written (the file exists,
        return 0  # empty, between its creation and its header: numpy says EOFError)


@pytest.mark.slow
def test_killed_annotation_resumes_to_the_same_store(tmp_path):
    _folder(tmp_path / "data", n=24)
    straight = _start(tmp_path, tmp_path / "a")  # the uninterrupted job, beside the killed one
    try:
        killed = _start(tmp_path, tmp_path / "b", pause=1.0)
        kill_when(killed, lambda: _written(tmp_path / "b") >= 8, "the first of three chunks was written")
        assert killed.returncode == -signal.SIGKILL
        assert 0 < _written(tmp_path / "b") < 24
        with pytest.raises(Exception, match="incomplete"):
            LabelMapStore.open(tmp_path / "b")
        rc, log = finish(_start(tmp_path, tmp_path / "b"))
        assert rc == 0, log
        rc, log = finish(straight)
        assert rc == 0, log
    finally:
        stop(straight)
    for name in ("scores.npy", "indices.npy", "quant.npy", "written.npy", "paths.txt", "meta.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

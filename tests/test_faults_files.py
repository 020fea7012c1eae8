"""Fault injection, files (issue 28, findings 4, 5, 7): every bad file a user hands us is named in one sentence, and a
full disk loses nothing and says so.

Each case is run as a user meets it — a truncated JPEG in a fake full-scale tree (in-process, in DataLoader workers,
in `python -m pretrain`, `python -m relabel.annotate` and the `--decode` data check), empty / truncated /
wrong-architecture / malicious checkpoints in each format, wrong-shape and pickled official maps, ImageNet val as the
official tarball unpacks it, and a disk that fills (a file-size limit, RLIMIT_FSIZE, in a subprocess; a 2 MB tmpfs
where this machine lets us mount one) — and asserts on the message (names the file, at most 3 lines, no traceback),
the exit status, and that every earlier checkpoint and store is byte-identical afterwards with no temp file left.
"""
from __future__ import annotations

import hashlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch.utils.data import DataLoader

from relabel import evaluators as E
from relabel.atomic_write import is_disk_full
from relabel.checkpoint import CheckpointError, load_checkpoint, save_model
from relabel.data.fakefull import make_fake_full
from relabel.data.readers import list_class_folders
from relabel.loader import BadImageError, Sample, TrainSet, train_transform
from relabel.official_maps import import_official
from relabel.store import LabelMapStore, LabelStoreError

REPO = Path(__file__).resolve().parents[1]
TINY = dict(layers=(1, 1, 1, 1), channels=(8, 8, 16, 16), stem_width=8)
pytestmark = pytest.mark.slow


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}
    return env


def _run(args, env=None, limit: int | None = None, timeout=300):
    """`python ARGS` in the repo; `limit`: RLIMIT_FSIZE in bytes with SIGXFSZ ignored, so a write past it fails
    with EFBIG as a full disk fails with ENOSPC (instead of the signal killing the process)."""
    def preexec():
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env or _env(), capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec)


def _one_sentence(err: str, *names) -> str:
    """The error output: at most 3 lines, no traceback, naming every one of `names`."""
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert 1 <= len(lines) <= 3 and "Traceback" not in err, err[-3000:]
    for n in names:
        assert str(n) in err, (n, err)
    return err


def _digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


# ------------------------------------------------------------------------------------------------ images
@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory):
    """A fake full-scale tree whose third training image (in sample order) is cut in half."""
    env = make_fake_full(tmp_path_factory.mktemp("fakefull") / "tree")
    root = Path(env["IMAGENET_ROOT"])
    _, samples = list_class_folders(root / "train", E.DataRoots.full(root).classes, "training image")
    bad = samples[2][0]
    _truncate(bad)
    return env, root, samples, bad


def _trainset(root: Path, samples) -> TrainSet:
    rel = [Sample(p.relative_to(root / "train").as_posix(), k) for p, k in samples]
    return TrainSet(root / "train", rel, train_transform(32), seed=0)


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_image_is_named_in_process_and_in_loader_workers(bad_tree, workers):
    _, root, samples, bad = bad_tree
    loader = DataLoader(_trainset(root, samples), batch_size=4, num_workers=workers)
    with pytest.raises(BadImageError) as e:
        for _ in loader:
            pass
    msg = str(e.value)
    # the same sentence in both: torch's "Caught ... in DataLoader worker process N / Original Traceback" is gone
    assert msg.startswith(f"image {bad} (sample 2) cannot be decoded (") and msg.endswith("); remove or replace it.")
    assert "\n" not in msg and "Traceback" not in msg and "DataLoader worker" not in msg


def test_pretrain_full_scale_names_the_bad_image_through_loader_workers(bad_tree, tmp_path):
    env, _, _, bad = bad_tree
    p = _run(["-m", "pretrain", "resnet50", "original", "--scale", "full", "--set", "epochs=1", "--set",
              "batch_size=8", "--set", "input_size=32", "--set", "workers=2"],
             _env(**env, RELABEL_RUNS=str(tmp_path / "runs")))
    assert p.returncode == 1, p.stderr[-3000:]
    err = _one_sentence(p.stderr, bad, "remove or replace it")
    assert "(sample " in err


def test_annotate_names_the_bad_image(bad_tree, tmp_path):
    _, root, _, bad = bad_tree
    torch.manual_seed(0)
    ckpt = save_model(timm.create_model("resnet18", num_classes=10, **TINY), tmp_path / "a.safetensors",
                      arch="resnet18", model_kwargs=TINY)
    p = _run(["-m", "relabel.annotate", "--images", root / "train", "--ckpt", ckpt, "--input-size", "64",
              "--out", tmp_path / "store", "--k", "3", "--workers", "2", "--batch-size", "4", "--no-progress"])
    assert p.returncode == 2, p.stderr[-3000:]
    _one_sentence(p.stderr, bad, "remove or replace it")


def test_data_check_decode_lists_the_bad_images(bad_tree):
    env, root, samples, bad = bad_tree
    p = _run(["-m", "relabel.data.check", "--data-root", root, "--no-progress"])
    assert p.returncode == 0 and "layout fits" in p.stdout, p.stderr[-3000:]  # the layout alone cannot see it
    p = _run(["-m", "relabel.data.check", "--data-root", root, "--decode", "--workers", "2", "--no-progress"])
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and len(lines) == 2, p.stderr
    assert lines[0].startswith(f"image {bad} cannot be decoded")
    assert lines[1].startswith("error: 1 of ") and "remove or replace them" in lines[1]


def test_data_check_decode_passes_a_clean_tree(tmp_path):
    root = Path(make_fake_full(tmp_path / "tree", classes=2, train_per_class=2)["IMAGENET_ROOT"])
    p = _run(["-m", "relabel.data.check", "--data-root", root, "--evaluators", "val,real", "--decode", "--workers",
              "2", "--no-progress"])
    assert p.returncode == 0 and "decoded all" in p.stdout, p.stdout + p.stderr


# ------------------------------------------------------------------------------------------------ checkpoints
class Malicious:
    """A pickle that would write a file when loaded (torch.load(weights_only=False) would run it)."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, **TINY)
    save_model(model, d / "good.safetensors", arch="resnet18", model_kwargs=TINY)
    torch.save(model.state_dict(), d / "good.pth")
    torch.save({"state_dict": model.state_dict(), "arch": "resnet18"}, d / "good.pt")
    other = timm.create_model("resnet34", num_classes=10)
    save_model(other, d / "r34.safetensors", arch="resnet34")
    torch.save(other.state_dict(), d / "r34.pth")
    torch.save({"state_dict": other.state_dict(), "arch": "resnet34"}, d / "r34.pt")
    return d


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
@pytest.mark.parametrize("fault", ["empty", "truncated", "header", "wrong-arch"])
def test_bad_checkpoint_is_one_sentence_naming_it(good, tmp_path, suffix, fault, capsys):
    from relabel.checkpoint import main
    f = tmp_path / f"{fault}{suffix}"
    if fault == "empty":
        f.write_bytes(b"")
    elif fault == "truncated":
        f.write_bytes((good / f"good{suffix}").read_bytes()[:-4000])
    elif fault == "header":  # cut inside the header / zip directory
        f.write_bytes((good / f"good{suffix}").read_bytes()[:40])
    else:
        shutil.copy(good / f"r34{suffix}", f)
    out = tmp_path / "converted.safetensors"
    argv = ["convert", "--weights", str(f), "--out", str(out)] + (["--arch", "resnet18"] if fault == "wrong-arch" else [])
    assert main(argv) == 2
    err = _one_sentence(capsys.readouterr().err, f)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    expect = {"empty": "is empty (0 bytes)", "truncated": "truncated", "header": "truncated",
              "wrong-arch": "does not fit timm 'resnet18'"}[fault]
    assert expect in err, err
    assert not err.rstrip().endswith("…).") and "IndexError" not in err


@pytest.mark.parametrize("suffix", [".pth", ".pt"])
def test_malicious_checkpoint_is_refused_as_unsafe_and_never_run(tmp_path, suffix):
    target = tmp_path / "written-by-the-pickle.txt"
    f = tmp_path / f"evil{suffix}"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Malicious(target)}, f)
    p = _run(["-m", "relabel.checkpoint", "convert", "--weights", f, "--arch", "resnet18", "--out",
              tmp_path / "x.safetensors"])
    assert p.returncode == 2
    err = _one_sentence(p.stderr, f, "refused as unsafe")
    assert err.rstrip().endswith("from a source you trust.")  # the whole sentence, not cut mid-word
    with pytest.raises(CheckpointError, match="refused as unsafe"):
        load_checkpoint(f)
    assert not target.exists()


def test_safetensors_of_another_architecture_names_it(good):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(good / "r34.safetensors", "resnet18")
    assert str(good / "r34.safetensors") in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ official maps
@pytest.fixture(scope="module")
def official(tmp_path_factory):
    env = make_fake_full(tmp_path_factory.mktemp("fakefull-maps") / "tree", classes=2, train_per_class=3)
    return Path(env["RELABEL_OFFICIAL_MAPS"])


def _official_copy(official: Path, tmp_path: Path) -> tuple[Path, list[Path]]:
    maps = tmp_path / "maps"
    shutil.copytree(official, maps)
    return maps, sorted(maps.glob("*/*.pt"))


def test_official_map_of_another_shape_after_the_first_is_named(official, tmp_path):
    maps, files = _official_copy(official, tmp_path)
    t = torch.load(files[3], weights_only=True)
    torch.save(t[:, :, :-1], files[3])  # one row short: [2, 5, 14, 15]
    with pytest.raises(LabelStoreError) as e:
        import_official(maps, tmp_path / "store", progress=False)
    msg = str(e.value)
    assert str(files[3]) in msg and "[2, 5, 14, 15]" in msg and "\n" not in msg
    assert not (tmp_path / "store" / "meta.json").exists() or not LabelMapStore(
        tmp_path / "store", _allow_incomplete=True).meta.complete


def test_pickled_official_map_is_refused_as_unsafe(official, tmp_path):
    maps, files = _official_copy(official, tmp_path)
    target = tmp_path / "written-by-the-pickle.txt"
    torch.save(Malicious(target), files[1])
    with pytest.raises(LabelStoreError) as e:
        import_official(maps, tmp_path / "store", progress=False)
    assert str(files[1]) in str(e.value) and "refused as unsafe" in str(e.value) and "\n" not in str(e.value)
    assert not target.exists()


def test_empty_official_map_is_named(official, tmp_path):
    maps, files = _official_copy(official, tmp_path)
    files[0].write_bytes(b"")
    with pytest.raises(LabelStoreError) as e:
        import_official(maps, tmp_path / "store", progress=False)
    assert str(files[0]) in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------ flat val
def _devkit(path: Path, leaf_order: list[str], truth: list[int]) -> Path:
    """A devkit tarball as image-net.org ships it: data/meta.mat (synsets, leaves numbered 1.. in the devkit's own
    order, plus one inner node) and data/ILSVRC2012_validation_ground_truth.txt (line i: the ID of val image i)."""
    import scipy.io
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    rows = [(i + 1, w, "w", "g", 0, np.zeros(0), 0, 1300) for i, w in enumerate(leaf_order)]
    rows.append((len(leaf_order) + 1, "n00001740", "entity", "g", 2, np.array([1, 2]), 19, 0))
    synsets = np.array(rows, dtype=[(f, object) for f in fields])
    meta = io.BytesIO()
    scipy.io.savemat(meta, {"synsets": synsets})
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("ILSVRC2012_devkit_t12/data/meta.mat", meta.getvalue()),
                           ("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt",
                            "".join(f"{i}\n" for i in truth).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_flat_val_is_recognised_and_arranged_by_the_devkit(tmp_path, capsys):
    from relabel.data.arrange_val import main as arrange_main
    classes = E.DataRoots.full(tmp_path).classes
    leaf_order = [classes[7], classes[3], classes[500]]  # the devkit's ID order is not the sorted-wnid order
    val = tmp_path / "val"
    val.mkdir()
    truth = [1, 2, 3, 2, 1, 3]
    for i in range(1, len(truth) + 1):
        Image.fromarray(np.full((8, 8, 3), i * 20, np.uint8)).save(val / f"ILSVRC2012_val_{i:08d}.JPEG")
    with pytest.raises(E.DatasetMissing) as e:
        E.check_data(["val"], E.DataRoots.full(tmp_path, given_by="cli"))
    msg = str(e.value)
    assert f"holds {len(truth)} images directly" in msg and "\n" not in msg
    assert f"python -m relabel.data.arrange_val {val} --devkit ILSVRC2012_devkit_t12.tar.gz" in msg
    devkit = _devkit(tmp_path / "ILSVRC2012_devkit_t12.tar.gz", leaf_order, truth)
    assert arrange_main([str(val), "--devkit", str(devkit)]) == 0
    assert "moved 6 images" in capsys.readouterr().out
    for i, cls in enumerate(truth, 1):
        assert (val / leaf_order[cls - 1] / f"ILSVRC2012_val_{i:08d}.JPEG").is_file()
    samples = E.base.class_folder_samples(val, classes, "ImageNet val")
    assert sorted((p.name, classes[k]) for p, k in samples) == sorted(
        (f"ILSVRC2012_val_{i:08d}.JPEG", leaf_order[c - 1]) for i, c in enumerate(truth, 1))
    assert arrange_main([str(val), "--devkit", str(devkit)]) == 2  # nothing flat is left to arrange
    assert "arranged already" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ full disk
_SAVE_TWICE = """
import hashlib, signal, resource, sys, timm, torch
from pathlib import Path
from relabel.checkpoint import CheckpointError, save_model
from relabel.train import _save
d, limit = Path(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
small = timm.create_model("resnet18", num_classes=10, layers=(1, 1, 1, 1), channels=(8, 8, 16, 16), stem_width=8)
save_model(small, d / "model.safetensors", arch="resnet18")          # the earlier checkpoints, written in full
_save(d / "last.pt", {"model": small.state_dict(), "step": 1})
print("saved", *(hashlib.sha256((d / n).read_bytes()).hexdigest() for n in ("model.safetensors", "last.pt")),
      flush=True)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)                          # the disk "fills": writes past limit fail
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
big = timm.create_model("resnet18", num_classes=10)
code = 0
for what, save in (("safetensors", lambda: save_model(big, d / "model.safetensors", arch="resnet18")),
                   ("torch", lambda: _save(d / "last.pt", {"model": big.state_dict(), "step": 2}))):
    try:
        save()
    except CheckpointError as e:
        print(e, file=sys.stderr)
        code += 1
sys.exit(code)
"""


def test_checkpoint_save_past_a_file_size_limit_keeps_the_earlier_checkpoints(tmp_path):
    script = tmp_path / "save_twice.py"
    script.write_text(_SAVE_TWICE)
    d = tmp_path / "run"
    d.mkdir()
    p = _run([script, d, 2_000_000])
    assert p.stdout.startswith("saved"), p.stderr[-3000:]
    earlier = dict(zip(("model.safetensors", "last.pt"), p.stdout.split()[1:]))
    assert p.returncode == 2, p.stderr[-3000:]  # both saves refused, each with its sentence
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in p.stderr, p.stderr
    assert str(d / "model.safetensors") in lines[0] and str(d / "last.pt") in lines[1]
    for line in lines:
        assert "file-size limit (ulimit -f)" in line and "is as it was" in line
    assert _digest(d) == earlier  # byte-identical to the earlier checkpoints, and no temp file left
    ref = tmp_path / "ref"  # the control: without a limit both saves succeed
    ref.mkdir()
    assert _run([script, ref, 10**12]).returncode == 0


def test_convert_cli_past_a_file_size_limit_keeps_the_earlier_output(good, tmp_path):
    out = tmp_path / "out.safetensors"
    shutil.copy(good / "good.safetensors", out)
    big = tmp_path / "r34.pth"
    shutil.copy(good / "r34.pth", big)
    mine = lambda: {k: v for k, v in _digest(tmp_path).items() if not k.startswith("runs/")}  # not the sha cache
    before = mine()
    p = _run(["-m", "relabel.checkpoint", "convert", "--weights", big, "--out", out],
             limit=big.stat().st_size // 2)
    assert p.returncode == 2
    _one_sentence(p.stderr, out, "file-size limit", "is as it was")
    assert mine() == before  # out.safetensors byte-identical, no out.safetensors.tmp


def test_annotation_store_past_a_file_size_limit_is_refused_at_the_start(bad_tree, tmp_path):
    _, root, _, bad = bad_tree
    images = tmp_path / "images"
    shutil.copytree(root / "train", images)
    (images / Path(bad).relative_to(root / "train")).unlink()  # the bad image is the other test's business
    torch.manual_seed(0)
    ckpt = save_model(timm.create_model("resnet18", num_classes=10, **TINY), tmp_path / "a.safetensors",
                      arch="resnet18", model_kwargs=TINY)
    mine = lambda: {k: v for k, v in _digest(tmp_path).items() if not k.startswith("runs/")}  # not the sha cache
    before = mine()
    args = ["-m", "relabel.annotate", "--images", images, "--ckpt", ckpt, "--input-size", "64", "--out",
            tmp_path / "store", "--k", "3", "--workers", "0", "--batch-size", "4", "--no-progress"]
    p = _run(args, limit=1024)
    assert p.returncode == 2, p.stderr[-3000:]
    _one_sentence(p.stderr, tmp_path / "store", "file-size limit")
    assert mine() == before and not (tmp_path / "store").exists()  # nothing half-allocated left
    p = _run(args)  # with the limit gone the same command builds the store
    assert p.returncode == 0, p.stderr[-3000:]
    assert LabelMapStore(tmp_path / "store").meta.complete


def test_store_create_past_a_file_size_limit_keeps_an_earlier_store(tmp_path):
    script = tmp_path / "create.py"
    script.write_text("""
import signal, resource, sys
from pathlib import Path
from relabel.store import LabelMapStore, LabelStoreError
d = Path(sys.argv[1])
w = LabelMapStore.create(d / "old", [f"c/{i}.JPEG" for i in range(10)], num_classes=10, k=2, grid=(3, 3))
w.write(list(range(10)), [[[[float(i + j)] * 3] * 3 for j in range(2)] for i in range(10)],
        [[[[j] * 3] * 3 for j in range(2)] for i in range(10)])
w.finalize()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    LabelMapStore.create(d / "old", [f"c/{i}.JPEG" for i in range(10)], num_classes=10, k=2, grid=(3, 3))  # resume
    LabelMapStore.create(d / "new", [f"c/{i}.JPEG" for i in range(5000)], num_classes=10, k=2, grid=(3, 3))
except LabelStoreError as e:
    sys.exit(str(e))
""")
    p = _run([script, tmp_path, "0"])
    assert p.returncode == 1
    _one_sentence(p.stderr, tmp_path / "new", "file-size limit", "nothing of it was kept")
    assert not (tmp_path / "new").exists()
    store = LabelMapStore(tmp_path / "old")
    assert store.meta.complete and len(store) == 10


def test_disk_full_is_recognised_in_each_library_wording():
    import errno
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"))
    assert is_disk_full(Exception('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                                  '"No space left on device" })'))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs (root only; skipped where it cannot be mounted)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_tiny_disk_refuses_a_checkpoint_and_a_store_before_writing(tiny_disk):
    torch.manual_seed(0)
    small = timm.create_model("resnet18", num_classes=10, **TINY)
    save_model(small, tiny_disk / "model.safetensors", arch="resnet18")
    before = _digest(tiny_disk)
    with pytest.raises(CheckpointError) as e:
        save_model(timm.create_model("resnet18", num_classes=10), tiny_disk / "model.safetensors", arch="resnet18")
    msg = str(e.value)
    assert msg.startswith(f"not enough free space to write checkpoint {tiny_disk / 'model.safetensors'}: it needs ")
    assert f"and {tiny_disk} has " in msg and "\n" not in msg
    with pytest.raises(LabelStoreError) as e:
        LabelMapStore.create(tiny_disk / "store", [f"c/{i}.JPEG" for i in range(20000)], num_classes=1000, k=5,
                             score_dtype="float32")
    assert f"label store {tiny_disk / 'store'}" in str(e.value) and "free" in str(e.value)
    assert _digest(tiny_disk) == before and not (tiny_disk / "store").exists()


def test_sparse_store_on_a_full_disk_is_refused_when_reopened_not_a_bus_error(tiny_disk):
    """A store allocated sparsely (as before `reserve`) on a disk that filled since: reopening it to resume reserves
    its blocks and says the disk is full, where writing through the memory map would die of SIGBUS."""
    path = tiny_disk / "store"
    LabelMapStore.create(path, [f"c/{i}.JPEG" for i in range(1000)], num_classes=1000, k=5, grid=(5, 5),
                         score_dtype="float32")
    for f in path.glob("*.npy"):  # make it sparse again: same size, blocks given back
        size = f.stat().st_size
        data = f.read_bytes()[:4096]  # the .npy header; the rest is zeros (nothing written yet)
        os.truncate(f, 0)
        with open(f, "r+b") as fh:
            fh.write(data)
        os.truncate(f, size)
    free = shutil.disk_usage(tiny_disk).free
    (tiny_disk / "filler").write_bytes(b"\0" * (free - 8192))
    with pytest.raises(LabelStoreError) as e:
        from relabel.store import LabelMapWriter
        LabelMapWriter(path)
    assert str(path) in str(e.value) and "the disk is full" in str(e.value)


def test_tiny_disk_refuses_an_official_export_before_writing(tiny_disk, tmp_path):
    from relabel.official_maps import export_official
    w = LabelMapStore.create(tmp_path / "store", [f"n0/{i}.JPEG" for i in range(600)], num_classes=10, k=2,
                             grid=(3, 3))
    w.write(np.arange(600), np.ones((600, 2, 3, 3)), np.tile(np.arange(2)[None, :, None, None], (600, 1, 3, 3)))
    with pytest.raises(LabelStoreError) as e:
        export_official(w.finalize(), tiny_disk / "release", progress=False)
    assert str(e.value).startswith(f"not enough free space to write the official tree {tiny_disk / 'release'}")
    assert not list((tiny_disk / "release").rglob("*.pt"))


def test_an_image_gone_since_listing_is_named_in_workers(tmp_path):
    (tmp_path / "c").mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), i * 50, np.uint8)).save(tmp_path / "c" / f"{i}.jpg")
    ds = TrainSet(tmp_path, [Sample(f"c/{i}.jpg", 0) for i in range(4)], train_transform(8), seed=0)
    (tmp_path / "c" / "1.jpg").unlink()
    with pytest.raises(BadImageError) as e:
        for _ in DataLoader(ds, batch_size=2, num_workers=2):
            pass
    assert str(e.value).startswith(f"image {tmp_path / 'c' / '1.jpg'} (sample 1) cannot be read (No such file")
    assert "\n" not in str(e.value)

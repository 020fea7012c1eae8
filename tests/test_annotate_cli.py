"""`python -m relabel.annotate` (one process and torchrun), `python -m relabel.checkpoint convert`, and Table 10's
init from a local file instead of timm's hub."""
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

from relabel.checkpoint import CheckpointError, load_checkpoint, read_meta, save_model
from relabel.store import LabelMapStore

ROOT = Path(__file__).resolve().parents[1]
WNIDS = ("n01440764", "n01443537")
TINY = dict(layers=(1, 1, 1, 1), channels=(8, 8, 16, 16), stem_width=8)


def _imagenet_folder(root: Path, per_class=6) -> Path:
    """Tiny JPEGs in ImageNet's train layout, <wnid>/<wnid>_<id>.JPEG, of varied sizes."""
    rng = np.random.default_rng(0)
    for w in WNIDS:
        (root / w).mkdir(parents=True)
        for i in range(per_class):
            h, wd = rng.integers(24, 48, 2)
            Image.fromarray(rng.integers(0, 255, (h, wd, 3), dtype=np.uint8)).save(root / w / f"{w}_{i}.JPEG")
    return root


def _annotator(path: Path) -> Path:
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=10, **TINY)
    return save_model(model, path, arch="resnet18", model_kwargs=TINY)


def annotate_main(argv) -> int:
    from relabel.annotate import main
    return main(argv)


def checkpoint_main(argv) -> int:
    from relabel.checkpoint import main
    return main(argv)


def _args(images, ckpt, out, *extra):
    return ["--images", str(images), "--ckpt", str(ckpt), "--input-size", "64", "--out", str(out), "--k", "3",
            "--workers", "0", "--batch-size", "4", "--no-progress", *extra]


def test_torchrun_two_ranks_write_the_single_process_store(tmp_path, capsys):
    images, ckpt = _imagenet_folder(tmp_path / "train"), _annotator(tmp_path / "annotator.safetensors")
    assert annotate_main(_args(images, ckpt, tmp_path / "single")) == 0
    assert "annotated 12 images" in capsys.readouterr().out
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "relabel.annotate", *_args(images, ckpt, tmp_path / "sharded")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert time.time() - t0 < 60
    assert run.stdout.count("annotated 12 images") == 1 and "over 2 ranks" in run.stdout  # rank 0 reports the sum
    a, b = LabelMapStore.open(tmp_path / "single"), LabelMapStore.open(tmp_path / "sharded")
    assert a.meta == b.meta and a.meta.complete and a.meta.annotator.startswith("resnet18@sha256:")
    assert len(a) == 12 and a.paths == sorted(f"{w}/{w}_{i}.JPEG" for w in WNIDS for i in range(6))
    for p in a.paths:
        (sa, ia), (sb, ib) = a.read(p), b.read(p)
        assert np.array_equal(ia, ib) and np.allclose(sa, sb, atol=1e-5), p
    # a finished store: the same command again annotates nothing and leaves it as it was
    before = (tmp_path / "single" / "scores.npy").read_bytes()
    assert annotate_main(_args(images, ckpt, tmp_path / "single")) == 0
    assert "annotated 0 images" in capsys.readouterr().out
    assert (tmp_path / "single" / "scores.npy").read_bytes() == before


def test_annotate_cli_errors_are_one_sentence(tmp_path, capsys):
    images, ckpt = _imagenet_folder(tmp_path / "train"), _annotator(tmp_path / "annotator.safetensors")

    def error(args) -> str:
        assert annotate_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
        return err

    assert "image folder" in error(_args(tmp_path / "nope", ckpt, tmp_path / "s")) and "does not exist" in \
        error(_args(tmp_path / "nope", ckpt, tmp_path / "s"))
    (tmp_path / "empty").mkdir()
    assert "no images" in error(_args(tmp_path / "empty", ckpt, tmp_path / "s"))
    assert "does not fit timm 'resnet50'" in error(_args(images, ckpt, tmp_path / "s", "--arch", "resnet50"))
    assert annotate_main(_args(images, ckpt, tmp_path / "s")) == 0  # a store of this folder ...
    capsys.readouterr()
    (images / WNIDS[0] / f"{WNIDS[0]}_0.JPEG").unlink()  # ... is not the store of another image set
    err = error(_args(images, ckpt, tmp_path / "s"))
    assert "does not match the dataset" in err and "n01440764_0.JPEG" in err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert "is not a label-map store" in error(_args(images, ckpt, tmp_path / "taken"))


def test_convert_a_weights_file_into_a_checkpoint_that_names_its_architecture(tmp_path, capsys):
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=7)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # saved from DataParallel, no 'arch'
    torch.save(state, tmp_path / "weights.pth")
    # what a researcher met before: "pass --arch", which results.make does not have; now the convert command
    with pytest.raises(CheckpointError, match=r"relabel\.checkpoint convert --arch <timm model name> --weights "):
        load_checkpoint(tmp_path / "weights.pth")
    out = tmp_path / "annotator.safetensors"
    assert checkpoint_main(["convert", "--weights", str(tmp_path / "weights.pth"), "--out", str(out)]) == 2
    assert "pass --arch with its timm model name" in capsys.readouterr().err and not out.exists()
    assert checkpoint_main(["convert", "--arch", "resnet10t", "--weights", str(tmp_path / "weights.pth"),
                            "--out", str(out)]) == 0
    assert "timm 'resnet10t', 7 classes" in capsys.readouterr().out
    meta = read_meta(out)
    assert meta["arch"] == "resnet10t" and meta["num_classes"] == 7 and meta["extra"]["converted_from"] == "weights.pth"
    back = load_checkpoint(out)  # no --arch needed any more
    for k, v in model.state_dict().items():
        assert torch.equal(back.model.state_dict()[k], v), k
    # a weights file of another architecture: one sentence, nothing written
    assert checkpoint_main(["convert", "--arch", "resnet18", "--weights", str(tmp_path / "weights.pth"),
                            "--out", str(tmp_path / "bad.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not fit timm 'resnet18'" in err
    assert not (tmp_path / "bad.safetensors").exists()


def test_table10_init_from_a_local_file_and_a_clear_error_when_the_hub_is_out_of_reach(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf
    from multilabel_coco.config import get_config, recipe
    from multilabel_coco.pipeline import pretrained_init

    monkeypatch.delenv("RELABEL_COCO_INIT_RESNET50", raising=False)
    cfg = get_config("full", "resnet50")
    assert cfg.init == "timm:resnet50.tv_in1k"
    # the hub is asked for and cannot be reached: one sentence naming the local-file option, at once
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    t0 = time.time()
    with pytest.raises(CheckpointError, match="RELABEL_COCO_INIT_RESNET50"):
        pretrained_init(cfg)
    assert time.time() - t0 < 15
    # weights already in the local Hugging Face cache load from there, without the hub
    from safetensors.torch import save_file
    from relabel.checkpoint import timm_pretrained
    snap = tmp_path / "hf-cache" / "models--timm--resnet18.tv_in1k" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0" * 40)
    r18 = timm.create_model("resnet18").state_dict()
    save_file(r18, str(snap / "model.safetensors"))
    cached = timm_pretrained("resnet18.tv_in1k", "unused").state_dict()
    assert all(torch.equal(cached[k], v) for k, v in r18.items())
    # torchvision's ResNet-50 as a local file (its key names are timm's)
    torch.manual_seed(0)
    r50 = timm.create_model("resnet50")
    torch.save(r50.state_dict(), tmp_path / "resnet50-0676ba61.pth")
    monkeypatch.setenv("RELABEL_COCO_INIT_RESNET50", str(tmp_path / "resnet50-0676ba61.pth"))
    cfg = get_config("full", "resnet50")
    assert cfg.init == f"file:{tmp_path / 'resnet50-0676ba61.pth'}"
    arch, kwargs, state, source = pretrained_init(cfg)
    assert arch == "resnet50" and kwargs == {} and source.startswith(cfg.init)
    assert torch.equal(state["layer4.2.conv3.weight"], r50.state_dict()["layer4.2.conv3.weight"])
    # the recipe names the file and its content, not the local path
    rec = recipe(cfg)
    assert rec["init"] == "file:resnet50-0676ba61.pth" and len(rec["init_sha256"]) == 64
    assert str(tmp_path) not in str(rec)

"""Checkpoints: our safetensors round trip, the official ReLabel `.pth` mapping (torchvision ResNet state dict with a
`module.` prefix → timm), and one-sentence errors for checkpoints that do not fit."""
from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from relabel.checkpoint import CheckpointError, load_checkpoint, load_model, misfit, save_model


def _same_outputs(a, b, size=64):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-5)


@pytest.mark.parametrize("wrapped", [False, True])
def test_official_pth_maps_torchvision_resnet_onto_timm(tmp_path, wrapped):
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=10)
    for m in tv.modules():  # non-trivial BN statistics, so a mis-mapped buffer shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    state = {f"module.{k}": v for k, v in tv.state_dict().items()}  # saved from nn.DataParallel
    obj = {"epoch": 300, "arch": "resnet18", "state_dict": state, "best_acc1": 71.7} if wrapped else state
    torch.save(obj, tmp_path / "relabel_resnet18.pth")
    ck = load_checkpoint(tmp_path / "relabel_resnet18.pth")  # arch from 'arch' or from the block counts
    assert ck.arch == "resnet18" and ck.num_classes == 10 and ck.format == "torch"
    assert isinstance(ck.model, timm.models.ResNet)
    assert _same_outputs(ck.model, tv)


def test_resnet50_is_recognised_from_its_blocks(tmp_path):
    sd = torchvision.models.resnet50(num_classes=3).state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "r50.pth")
    assert load_checkpoint(tmp_path / "r50.pth").arch == "resnet50"


def test_safetensors_round_trip_keeps_architecture(tmp_path):
    kw = {"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8}
    model = timm.create_model("resnet18", num_classes=7, **kw)
    save_model(model, tmp_path / "m.safetensors", arch="resnet18", model_kwargs=kw, extra={"seed": 2})
    ck = load_checkpoint(tmp_path / "m.safetensors")
    assert ck.num_classes == 7 and ck.extra == {"seed": 2} and len(ck.sha256) == 64
    assert _same_outputs(ck.model, model, 32)
    assert _same_outputs(load_model(tmp_path / "m.safetensors"), model, 32)


def test_misfit_says_why_a_state_dict_does_not_fit():
    """The one fit check behind every loader: shapes first (the first with both shapes), then missing, then
    unexpected keys; a classifier named as `head` may differ in shape or be absent, an unexpected key never fits."""
    kw = {"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8}
    model = timm.create_model("resnet18", num_classes=7, **kw)
    sd = model.state_dict()
    assert misfit(model, sd) is None
    narrow = timm.create_model("resnet18", num_classes=7, **{**kw, "channels": (4, 8, 16, 16)}).state_dict()
    assert misfit(model, narrow) == ("shape mismatch in ['layer1.0.conv1.weight', 'layer1.0.bn1.weight', "
                                     "'layer1.0.bn1.bias']: layer1.0.conv1.weight is (4, 64, 3, 3) in the weights, "
                                     "(8, 64, 3, 3) in the model")
    assert misfit(model, {k: v for k, v in sd.items() if k != "fc.bias"}) == "missing ['fc.bias']"
    assert misfit(model, {**sd, "extra.weight": sd["fc.bias"]}) == "unexpected ['extra.weight']"
    other_head = timm.create_model("resnet18", num_classes=3, **kw).state_dict()
    assert misfit(model, other_head).startswith("shape mismatch in ['fc.weight', 'fc.bias']")
    assert misfit(model, other_head, head="fc") is None
    assert misfit(model, {k: v for k, v in sd.items() if not k.startswith("fc.")}, head="fc") is None
    assert misfit(model, {**sd, "fc.extra": sd["fc.bias"]}, head="fc") == "unexpected ['fc.extra']"


def test_clear_errors_for_checkpoints_that_do_not_fit(tmp_path):
    sd = torchvision.models.resnet18(num_classes=10).state_dict()
    torch.save(sd, tmp_path / "r18.pth")
    with pytest.raises(CheckpointError, match=r"does not fit timm 'resnet50' with 10 classes .*pass the --arch"):
        load_checkpoint(tmp_path / "r18.pth", arch="resnet50")
    with pytest.raises(CheckpointError, match="10-class classifier but 1000 classes were expected"):
        load_checkpoint(tmp_path / "r18.pth", num_classes=1000)
    with pytest.raises(CheckpointError, match="'resnet_18' is not a timm architecture"):
        load_checkpoint(tmp_path / "r18.pth", arch="resnet_18")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="does not name its architecture; convert it once with "
                                              "`python -m relabel.checkpoint convert --arch <timm model name> "
                                              "--weights .*odd.pth --out odd.safetensors`"):
        load_checkpoint(tmp_path / "odd.pth")


def test_pickled_code_is_never_executed(tmp_path):
    torch.save({"state_dict": torchvision.models.resnet18().state_dict(), "args": object()}, tmp_path / "x.pth")
    with pytest.raises(CheckpointError, match="refused as unsafe"):
        load_checkpoint(tmp_path / "x.pth")

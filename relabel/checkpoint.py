"""Model checkpoints: our safetensors files (timm architecture in the metadata) and the official ReLabel `.pth`.

`save_model` writes `<name>.safetensors` whose metadata holds the timm model name, its create_model kwargs and
the class count, so `load_model(path)` rebuilds the model without the config that trained it. `load_checkpoint`
also reads PyTorch files (`.pth`/`.pt`/`.pth.tar`), such as the ResNet-50 the ReLabel authors released: a
torchvision state dict, often saved from `nn.DataParallel` (keys prefixed `module.`) and wrapped in
`{'state_dict': ..., 'arch': ...}`. torchvision's ResNet parameter names are timm's, so the mapping is: unwrap,
strip the prefix, load into `timm.create_model(arch)`. Nothing is ever unpickled (`torch.load(weights_only=True)`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file, safe_open

TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".bin", ".ckpt")
# torchvision/timm ResNets by (blocks per stage, bottleneck?): lets an official `.pth` load without --arch.
_RESNETS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
            ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101",
            ((3, 8, 36, 3), True): "resnet152"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model."""


@dataclass
class Checkpoint:
    """A loaded model and where it came from (what a run record needs to name it)."""
    model: nn.Module
    arch: str
    num_classes: int
    model_kwargs: dict = field(default_factory=dict)
    format: str = "safetensors"  # or "torch" (a .pth state dict)
    extra: dict = field(default_factory=dict)  # metadata saved with it (e.g. the training config)
    sha256: str = ""


def save_model(model: nn.Module, path: str | os.PathLike, *, arch: str, model_kwargs: dict | None = None,
               num_classes: int | None = None, extra: dict | None = None) -> Path:
    path = Path(path)
    meta = {"arch": arch, "model_kwargs": json.dumps(model_kwargs or {}, sort_keys=True),
            "num_classes": str(num_classes if num_classes is not None else model.num_classes),
            "extra": json.dumps(extra or {}, sort_keys=True)}
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_meta(path: str | os.PathLike) -> dict:
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    out = dict(meta)
    for key in ("model_kwargs", "extra"):
        if key in out:
            out[key] = json.loads(out[key])
    if "num_classes" in out:
        out["num_classes"] = int(out["num_classes"])
    return out


def load_model(path: str | os.PathLike, arch: str | None = None, **model_kwargs) -> nn.Module:
    """Rebuilds the timm model stored in a checkpoint (arch/kwargs from its metadata unless given)."""
    return load_checkpoint(path, arch, **model_kwargs).model


def load_checkpoint(path: str | os.PathLike, arch: str | None = None, num_classes: int | None = None,
                    **model_kwargs) -> Checkpoint:
    """A `.safetensors` of ours or a PyTorch state-dict file, as a timm model in eval mode plus its provenance.

    `arch` overrides the stored architecture (required for a `.pth` that is neither a ResNet nor names its
    `arch`); `num_classes` is checked against the checkpoint's classifier, never used to reshape it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a .safetensors or .pth file.")
    if path.suffix == ".safetensors":
        meta = read_meta(path)
        state, fmt, extra = load_file(str(path)), "safetensors", meta.get("extra", {})
        arch = arch or meta.get("arch")
        kwargs = {**meta.get("model_kwargs", {}), **model_kwargs}
    elif path.suffix in TORCH_SUFFIXES or path.name.endswith(".pth.tar"):
        state, stored_arch = _read_torch_state(path)
        fmt, extra, kwargs = "torch", {}, dict(model_kwargs)
        arch = arch or _timm_arch(stored_arch) or _infer_resnet(state)
    else:
        raise CheckpointError(f"{path} is neither a .safetensors nor a PyTorch (.pth/.pt) checkpoint.")
    if not arch:
        raise CheckpointError(f"{path} does not name its architecture; pass --arch (a timm model name).")
    if not timm.is_model(arch.split(".")[0]):
        raise CheckpointError(f"'{arch}' is not a timm architecture; pass --arch with a timm model name.")
    model, stored_classes = _build(arch, state, kwargs, path)
    if num_classes is not None and stored_classes != num_classes:
        raise CheckpointError(f"{path} has a {stored_classes}-class classifier but {num_classes} classes were "
                              f"expected; use a checkpoint trained on this dataset.")
    return Checkpoint(model.eval(), arch, stored_classes, kwargs, fmt, extra, file_sha256(path))


def _read_torch_state(path: Path) -> tuple[dict, str | None]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle that needs code to load, or not a torch file at all
        first = str(e).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path} cannot be read safely as a PyTorch state dict ({first}).") from None
    stored_arch = obj.get("arch") if isinstance(obj, dict) and isinstance(obj.get("arch"), str) else None
    for key in ("state_dict", "model", "model_state_dict"):  # training-script wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (nor one under 'state_dict' or 'model').")
    state = {}
    for k, v in obj.items():
        while k.startswith("module."):  # nn.DataParallel / DistributedDataParallel
            k = k[len("module."):]
        state[k] = v
    return state, stored_arch


def _timm_arch(name: str | None) -> str | None:
    return name if name and timm.is_model(name.split(".")[0]) else None


def _infer_resnet(state: dict) -> str | None:
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    return _RESNETS.get((tuple(blocks), "layer1.0.conv3.weight" in state))


def _build(arch: str, state: dict, kwargs: dict, path: Path) -> tuple[nn.Module, int]:
    """The timm model with the checkpoint's class count, loaded strictly; one-sentence errors on mismatch."""
    probe = timm.create_model(arch, pretrained=False, **kwargs)
    head = probe.default_cfg.get("classifier", "fc")
    head = head[0] if isinstance(head, (list, tuple)) else head
    w = state.get(f"{head}.weight")
    num_classes = int(w.shape[0]) if w is not None and w.ndim == 2 else probe.num_classes
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        what = (f"missing {missing[:2]}" if missing else f"unexpected {unexpected[:2]}" if unexpected
                else f"shape of {shapes[0]} is {tuple(state[shapes[0]].shape)}, not {tuple(own[shapes[0]].shape)}")
        raise CheckpointError(f"{path} does not fit timm '{arch}' with {num_classes} classes ({what}); "
                              f"pass the --arch (and model kwargs) it was trained with.")
    model.load_state_dict(state)
    return model, num_classes


def file_sha256(path: str | os.PathLike) -> str:
    """A file's content hash: ties records, resumable state and label maps to the exact weights they came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

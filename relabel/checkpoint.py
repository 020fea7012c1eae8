"""Model checkpoints as safetensors with their timm architecture in the metadata; never unpickled.

`save_model` writes `<name>.safetensors` whose metadata holds the timm model name, its create_model kwargs and
the class count, so `load_model(path)` rebuilds the model without the config that trained it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import timm
import torch.nn as nn
from safetensors.torch import load_file, save_file, safe_open


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model."""


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
    """Rebuilds the timm model stored in a checkpoint of ours (arch/kwargs from its metadata unless given)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path} is not a .safetensors checkpoint")
    meta = read_meta(path)
    arch = arch or meta.get("arch")
    if not arch:
        raise CheckpointError(f"{path} does not name its architecture; pass --arch")
    kwargs = {**meta.get("model_kwargs", {}), **model_kwargs}
    state = load_file(str(path))
    num_classes = meta.get("num_classes") or next(v.shape[0] for k, v in state.items() if k.endswith(".weight")
                                                  and v.ndim == 2)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise CheckpointError(f"{path} does not fit timm '{arch}' with {num_classes} classes ({first})") from None
    return model.eval()

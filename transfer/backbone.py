"""Opening a pretrained backbone checkpoint of ours for transfer, with one clear error for each way it can misfit.

Both transfer tasks start from `model.safetensors` written by a pretraining experiment (relabel.checkpoint: timm
arch + create_model kwargs in the metadata). Tables 8 and 9 transfer ResNet-50s, so a checkpoint of another
timm family (or weights that do not match their own metadata) is refused here, before any training starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn as nn
from safetensors.torch import load_file

from relabel.checkpoint import CheckpointError, misfit, read_meta
from relabel.records import file_sha256


@dataclass(frozen=True)
class Backbone:
    """A pretrained checkpoint's architecture and weights (classifier included; each task drops it)."""
    path: Path
    arch: str
    model_kwargs: dict
    num_classes: int
    state: dict
    sha256: str = ""  # of the checkpoint file (file_sha256)

    def create(self, **kwargs) -> nn.Module:
        """The same timm architecture, with extra create_model kwargs (num_classes, features_only, ...)."""
        return timm.create_model(self.arch, pretrained=False, **{**self.model_kwargs, **kwargs})

    def trunk_state(self) -> dict:
        """The weights without the pretraining classifier: a transfer task always starts from a new head, even
        when its class count happens to equal the pretraining one (mini Food has 10 classes, like the digits)."""
        with torch.device("meta"):
            model = self.create(num_classes=self.num_classes)
        head = model.get_classifier()
        name = next(n for n, m in model.named_modules() if m is head)
        return {k: v for k, v in self.state.items() if not k.startswith(name + ".")}


def open_backbone(path: str | os.PathLike, expect_arch: str | None = None) -> Backbone:
    """Reads a checkpoint of ours; raises CheckpointError (one sentence naming the file and the fix) if it is
    missing, not ours, of another architecture than `expect_arch`, or its weights do not fit its metadata."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"backbone checkpoint {path} does not exist; run its pretraining experiment first "
                              "(the transfer experiments do so through relabel.launch.ensure_checkpoint).")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path} is not a .safetensors checkpoint written by relabel.checkpoint.save_model.")
    meta = read_meta(path)
    arch = meta.get("arch")
    if not arch:
        raise CheckpointError(f"{path} does not name its timm architecture in its metadata; re-save it with "
                              "relabel.checkpoint.save_model(..., arch=...).")
    if expect_arch and arch != expect_arch:
        raise CheckpointError(f"{path} holds a timm '{arch}', but this transfer experiment fine-tunes a "
                              f"'{expect_arch}'; point it at a {expect_arch} checkpoint or change backbone_arch.")
    state = load_file(str(path))
    bb = Backbone(path, arch, dict(meta.get("model_kwargs", {})), int(meta.get("num_classes", 0)), state,
                  file_sha256(path))
    with torch.device("meta"):  # shapes only: cheap even for a full-size model
        why = misfit(bb.create(num_classes=bb.num_classes), state)
    if why:
        raise CheckpointError(f"{path} does not fit the timm '{arch}' {bb.model_kwargs} named in its own metadata "
                              f"({why}); the file is damaged or was saved with the wrong arch/model_kwargs.")
    return bb

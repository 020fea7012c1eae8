"""Pretraining configs for Tables 2–6 and Figures 2, 4–6: `get_config(scale)` → a frozen PretrainConfig.

A table row is a config: `ROWS[row]` gives the label source and label-map store of each row, `ARCHS[arch]` the
timm model per scale (mini = the same timm family with reduced widths/depths passed as arguments). Scale only
changes values: the full scale is the paper's recipe (ResNet-50, SGD Nesterov, lr 0.1 for batch 1024, wd 1e-4,
300 epochs, 5 warm-up epochs, RandomResizedCrop 224 + flip + colour jitter; EfficientNet-L2 @475 top-5 label
maps); mini trains on the bundled world in about a minute per run on one CPU core.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from relabel.configs import StrictConfig
from relabel.train import TrainConfig

# timm name and create_model kwargs per scale. Mini models keep the family's block type and stage structure.
_MINI_RESNET = {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128), "stem_width": 16}
ARCHS = {
    "resnet50": ("resnet50", {"mini": _MINI_RESNET, "full": {}}),
    "resnet18": ("resnet18", {"mini": _MINI_RESNET, "full": {}}),
    "resnet101": ("resnet101", {"mini": {**_MINI_RESNET, "layers": (1, 1, 2, 1)}, "full": {}}),
}


@dataclass(frozen=True)
class RowSpec:
    """What distinguishes one pretraining row: label source overrides and the label-map store it reads."""
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    store_dtype: str = "float32"
    store_k: int = 5
    clean: bool = False  # train on the label-cleaned subset only (Beyer et al.)

    @property
    def uses_store(self) -> bool:
        return self.train.get("label") == "relabel"


def _relabel(variant="localized_multi", **kw):
    return RowSpec(train={"label": "relabel", "relabel_variant": variant}, **kw)


ROWS = {
    "original": RowSpec(),  # Tables 2-7: original ImageNet labels
    "label_smoothing": RowSpec(train={"label_smoothing": 0.1}),  # Table 3
    "label_cleaning": RowSpec(clean=True),  # Table 3: Beyer et al.'s cleaned subset, one-hot CE
    "relabel": _relabel(),  # Tables 2-7: localized multi-labels, top-5 fp32
    "localized_single": _relabel("localized_single"),  # Table 2
    "global_multi": _relabel("global_multi"),  # Table 2
    "global_single": _relabel("global_single"),  # Table 2
    "relabel_fp16": _relabel(store_dtype="float16"),  # Table 6
    "relabel_int8": _relabel(store_dtype="uint8"),  # Table 6
    "relabel_top1": _relabel(store_k=1),  # Table 6 (k explored in the text)
    "relabel_top3": _relabel(store_k=3),
    "relabel_top10": _relabel(store_k=10),
    "relabel_mix_onehot": _relabel("mix"),  # Table 6 text: 0.5·ReLabel + 0.5·one-hot → 78.3
}


@dataclass(frozen=True)
class AnnotatorConfig:
    """The machine annotator. Mini: trained here on the world's extra split (single-object images, the paper's
    'extra data' role), trained at stride 32 and read at output stride 8 so a 48 px image gets a 6×6 map. Full: an external checkpoint
    (e.g. EfficientNet-L2-NS @475) or the official released maps imported instead of annotating."""
    train: TrainConfig | None
    input_size: int
    # create_model kwargs for reading the trained weights fully-convolutionally. Mini: output stride 8 (dilated
    # last stages, same weights), so a 48 px image gets a 6×6 map instead of 2×2 (the paper: 475 px → 15×15).
    read_kwargs: dict = field(default_factory=dict)
    checkpoint: str = ""  # full: safetensors of the annotator (relabel.checkpoint)
    official_maps: str = ""  # full: root of the official `<wnid>/<wnid>_<id>.pt` release to import


@dataclass(frozen=True)
class PretrainConfig(StrictConfig):
    scale: str
    data_root: str  # mini: where the world is generated; full: ImageNet root with train/ and val/
    target: TrainConfig  # the recipe of every target row (rows override the label source)
    annotator: AnnotatorConfig
    eval_input: int
    eval_crop_ratio: float
    workers: int
    clean_list: str = ""  # full: Beyer et al.'s fnames_clean.txt; mini: derived from the annotator
    cache_images: bool = False



def target_config(cfg: PretrainConfig, arch: str, row: str, seed: int) -> TrainConfig:
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture '{arch}'; known: {', '.join(ARCHS)}")
    if row not in ROWS:
        raise KeyError(f"unknown pretraining row '{row}'; known: {', '.join(ROWS)}")
    name, kwargs = ARCHS[arch]
    return cfg.target.replace(model=name, model_kwargs=dict(kwargs[cfg.scale]), seed=seed, **ROWS[row].train)


def get_config(scale: str = "mini", **overrides) -> PretrainConfig:
    if scale == "mini":
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cfg = PretrainConfig(
            scale="mini",
            data_root=os.environ.get("RELABEL_DATA", os.path.join(repo, "data")),
            # No flips: the objects are digits, which a mirror turns into other shapes.
            target=TrainConfig(num_classes=10, input_size=48, epochs=10, batch_size=128, lr=0.2,
                               weight_decay=5e-4, warmup_epochs=1.0, color_jitter=0.2, hflip=0.0, ckpt_every=200),
            annotator=AnnotatorConfig(
                # A wider, deeper ResNet-18 than the target, trained on the extra split's single-object images
                # (light crops, AdamW, 6 epochs: ~55% ReaL on val, a few points above targets trained on the scenes).
                train=TrainConfig(model="resnet18", model_kwargs={"layers": (2, 2, 2, 2),
                                                                 "channels": (32, 64, 128, 256), "stem_width": 32},
                                  num_classes=10, input_size=48, crop_scale=(0.85, 1.0), epochs=6,
                                  batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=0.05,
                                  warmup_epochs=0.5, color_jitter=0.0, hflip=0.0, ckpt_every=200),
                input_size=48, read_kwargs={"output_stride": 8}),
            eval_input=48, eval_crop_ratio=1.0, workers=0, cache_images=True)
    elif scale == "full":
        env = os.environ.get
        cfg = PretrainConfig(
            scale="full", data_root=env("IMAGENET_ROOT", "/data/imagenet"),
            target=TrainConfig(num_classes=1000, input_size=224, epochs=300, batch_size=1024, lr=0.1,
                               weight_decay=1e-4, warmup_epochs=5.0, color_jitter=0.4, ckpt_every=1000),
            annotator=AnnotatorConfig(train=None, input_size=475, checkpoint=env("RELABEL_ANNOTATOR_CKPT", ""),
                                      official_maps=env("RELABEL_OFFICIAL_MAPS", "")),
            eval_input=224, eval_crop_ratio=0.875, workers=8, clean_list=env("RELABEL_CLEAN_LIST", ""))
    else:
        raise ValueError(f"scale must be 'mini' or 'full', got '{scale}'")
    return cfg.replace(**overrides) if overrides else cfg

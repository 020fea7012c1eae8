"""Pretraining configs for Tables 2–6 and Figures 2, 4–6: `get_config(scale)` → a frozen PretrainConfig.

A table row is a config: `ROWS[row]` gives the label source and label-map store of each row, `ARCHS[arch]` the
timm model per scale (mini = the same timm family with reduced widths/depths passed as arguments). Scale only
changes values: the full scale is the paper's recipe (ResNet-50, SGD Nesterov, lr 0.1 for batch 1024, wd 1e-4,
300 epochs, 5 warm-up epochs, RandomResizedCrop 224 + flip + colour jitter; EfficientNet-L2 @475 top-5 label
maps); mini trains on the bundled world in about a minute per run on one CPU core.

Issue 8 (pretraining breadth) adds: EfficientNet-B0…B3 and ReXNet rows with their own recipes (`ARCH_RECIPES`,
Table 4), the CutMix and extra-data rows (Table 5, also Table 7), a ladder of machine annotators of different
strength (`ANNOTATORS`, Fig. 4) and knowledge-distillation rows whose teachers are those annotators (Fig. 6).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from relabel import labels as label_sources
from relabel.configs import ConfigError, StrictConfig, active_overrides
from relabel.train import TrainConfig

# timm name and create_model kwargs per scale. Mini models keep the family's block type and stage structure.
# Note: timm uses stem_width only for its deep (3×3) stems, so these mini ResNets (and the annotator below) keep the
# plain 7×7 stem at its full 64 channels; kept as is, since the committed records were trained with it (issue 17's
# note measures its cost: about 45% of a mini ResNet-50 step's FLOPs).
_MINI_RESNET = {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128), "stem_width": 16}
# A per-scale entry may also be (timm name, kwargs): another constructor of the same timm family. EfficientNet's
# registered B0…B3 fix their width/depth multipliers, so the mini rows use timm's minimal EfficientNet generator
# (`test_efficientnet`: the same EfficientNet class, MBConv/SE blocks, SiLU) with the paper's compound-scaling
# multipliers (width, depth) of B0…B3 passed as arguments; ReXNet takes width_mult/depth_mult directly.
_EFFNET_MULT = {"efficientnet_b0": (1.0, 1.0), "efficientnet_b1": (1.0, 1.1), "efficientnet_b2": (1.1, 1.2),
                "efficientnet_b3": (1.2, 1.4)}  # Tan & Le 2019, (channel, depth) multipliers
ARCHS = {
    "resnet50": ("resnet50", {"mini": _MINI_RESNET, "full": {}}),
    "resnet18": ("resnet18", {"mini": _MINI_RESNET, "full": {}}),
    "resnet101": ("resnet101", {"mini": {**_MINI_RESNET, "layers": (1, 1, 2, 1)}, "full": {}}),
    **{name: (name, {"mini": ("test_efficientnet", {"channel_multiplier": w, "depth_multiplier": d}), "full": {}})
       for name, (w, d) in _EFFNET_MULT.items()},
    "rexnet_100": ("rexnet_100", {"mini": {"width_mult": 0.5, "depth_mult": 0.5}, "full": {}}),
}

# Per-architecture training recipes (TrainConfig overrides per scale), applied before a row's own overrides.
# EfficientNets (App. D.2): AdamP lr 0.002, wd 0.01, dropout 0.2, drop path 0.2, random erasing, RandAugment and
# Mixup (timm's components, with the values timm's EfficientNet recipe uses), 400 epochs at batch 512 and each
# model's own resolution, the same for vanilla and ReLabel. Mini keeps the target's epochs, batch and 48 px input.
# ReXNet: the paper follows the ReXNet paper's recipe without restating it; we add its dropout 0.2 to the base one.
_EFFNET_RECIPE = {"optimizer": "adamp", "lr": 2e-3, "weight_decay": 1e-2, "drop_rate": 0.2, "drop_path": 0.2,
                  "randaugment": "rand-m9-mstd0.5", "random_erasing": 0.2, "mixup_alpha": 0.2}
_EFFNET_SIZE = {"efficientnet_b0": 224, "efficientnet_b1": 240, "efficientnet_b2": 260, "efficientnet_b3": 300}
ARCH_RECIPES = {
    **{name: {"mini": _EFFNET_RECIPE,
              "full": {**_EFFNET_RECIPE, "epochs": 400, "batch_size": 512, "input_size": _EFFNET_SIZE[name]}}
       for name in _EFFNET_MULT},
    "rexnet_100": {"mini": {"drop_rate": 0.2}, "full": {"drop_rate": 0.2}},
}

# App. D.1: with CutMix or extra data the paper switches to AdamP (lr 0.002, wd 0.01); CutMix α = 1.0 on the
# random crops, the pooled labels mixed by the CutMix rule (§4.3).
_CUTMIX = {"cutmix_prob": 1.0, "cutmix_beta": 1.0, "optimizer": "adamp", "lr": 2e-3, "weight_decay": 1e-2}


def arch_model(arch: str, scale: str) -> tuple[str, dict]:
    """(timm name, create_model kwargs) of an architecture row at a scale."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture '{arch}'; known: {', '.join(ARCHS)}")
    name, per_scale = ARCHS[arch]
    entry = per_scale[scale]
    return (entry[0], dict(entry[1])) if isinstance(entry, tuple) else (name, dict(entry))


@dataclass(frozen=True)
class RowSpec:
    """What distinguishes one pretraining row: label source overrides and the label-map store it reads."""
    train: dict = field(default_factory=dict)  # TrainConfig overrides
    store_dtype: str = "float32"
    store_k: int = 5
    clean: bool = False  # train on the label-cleaned subset only (Beyer et al.)
    annotator: str = "default"  # whose label maps (ANNOTATORS; Fig. 4) a 'relabel' row reads
    teacher: str = ""  # label 'kd': the annotator (ANNOTATORS) used as the teacher, forwarded every step (Fig. 6)
    extra: bool = False  # also train on the extra split, re-labelled and class-balanced (Table 5)
    # the parameters of the store a label source reads, beyond dtype and k (crop labels: {'crops': R, 'k': k});
    # part of the row's recipe when set (pretrain.experiments.target_experiment)
    label_args: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The row's label source (relabel.labels)."""
        return self.train.get("label", TrainConfig.label)

    @property
    def uses_store(self) -> bool:
        """Whether the row's label source reads a label store that the annotator `annotator` makes."""
        return "store" in label_sources.needs(self.label)

    @property
    def needs_annotator(self) -> bool:
        return self.uses_store or self.clean or self.extra or bool(self.teacher)


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
    # Mini only, not a paper row: LabelPooling of oracle maps (the world's masks, pretrain/oracle.py) — ReLabel
    # with a perfect annotator, to tell LabelPooling's effect from the annotator's strength (Table 2).
    "relabel_oracle": _relabel(annotator="oracle"),
    "relabel_cutmix": RowSpec(train={"label": "relabel", **_CUTMIX}),  # Tables 5, 7: 80.2 (R50), 81.6 (R101)
    "relabel_cutmix_extra": RowSpec(train={"label": "relabel", **_CUTMIX}, extra=True),  # Tables 5, 7: 81.2
}

# Fig. 4 / Fig. 6: machine annotators of different strength, all trained on the same data as the default one
# (paper: EfficientNet-B1…B8, L2, ResNeXt-WSL). Mini: the default annotator's family and recipe at other widths
# (channels × w) or budgets (epochs); overrides of the default annotator's TrainConfig, so they follow its recipe.
# 'default' is the annotator of every other table (the paper's EfficientNet-L2); the strongest point of Fig. 4
# at mini is the oracle row (the world's masks). Full: one checkpoint per name from
# RELABEL_ANNOTATOR_CKPT_<NAME> (e.g. the noisy-student EfficientNet-B1…B7 the paper uses).
ANNOTATORS = {
    "w025": {"width": 0.25},  # Fig. 6: KD teacher in the 'B1' role (cheapest)
    "w05": {"width": 0.5},  # Fig. 6: KD teacher 'B3'
    "e2": {"epochs": 2},
    "e6": {"epochs": 6},  # Fig. 6: KD teacher 'B5' (the default's cost, a weaker model)
    "default": {},  # Fig. 6: KD teacher 'B7', and the annotator whose maps ReLabel uses
}
for _name in ANNOTATORS:
    if _name != "default":
        ROWS[f"relabel_ann-{_name}"] = _relabel(annotator=_name)  # Fig. 4: ResNet-50 on that annotator's maps
KD_TEACHERS = ("w025", "w05", "e6", "default")  # Fig. 6, the paper's B1, B3, B5, B7 roles
for _name in KD_TEACHERS:
    # Fig. 6 / App. D.3: CE to the teacher's softmax only (no temperature, no ground truth), the base SGD recipe
    ROWS[f"kd_ann-{_name}"] = RowSpec(train={"label": "kd"}, teacher=_name)
# Beyond the paper (issue 26): FKD's crop-level soft labels (relabel/labels/fkd.py) from the default annotator, the
# teacher of kd_ann-default and the annotator of ReLabel's maps: Fig. 6's extra row. R = 30 crops per image (the
# mini recipe's 30 epochs replay each stored crop once, and the annotation costs the teacher forwards of online KD
# over the same 30 epochs, paid once for every seed), top-5 (FKD's 'marginal_smoothing_k5').
ROWS["fkd"] = RowSpec(train={"label": "fkd"}, label_args={"crops": 30, "k": 5})


@dataclass(frozen=True)
class AnnotatorConfig:
    """The machine annotator. Mini: published (`make annotator`) or trained here on the world's train and extra
    splits at 96 px (the 48 px images upsampled), trained at stride 32 and read at output stride 16 so an image
    gets a 6×6 map. Full: an external checkpoint (e.g. EfficientNet-L2-NS @475) or the official released maps
    imported instead of annotating."""
    train: TrainConfig | None
    input_size: int
    # create_model kwargs for reading the trained weights fully-convolutionally. Mini: output stride 16 (dilated
    # last stage, same weights), so a 96 px input gets a 6×6 map instead of 3×3 (the paper: 475 px → 15×15).
    read_kwargs: dict = field(default_factory=dict)
    checkpoint: str = ""  # full: safetensors of the annotator (relabel.checkpoint)
    official_maps: str = ""  # full: root of the official `<wnid>/<wnid>_<id>.pt` release to import
    # mini: the world's splits it trains on (labels = each image's single label), as the paper's L2 trained on
    # ImageNet's train set with its single labels plus extra data (JFT-300M)
    train_splits: tuple = ("extra",)

    def recipe(self) -> dict:
        """What an annotator trained here is made by (its identity, hashed into its artifacts' names): its
        training config and the splits it trains on."""
        return {**self.train.to_dict(), "train_splits": list(self.train_splits)}


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
    # Table 5's extra data: at most this many images per annotator top-1 class (paper: 4M of ImageNet-21K's 14M
    # balanced over 1K classes, ~4,000 per class; mini: 500 of the extra split's 10,000, as many as train holds)
    extra_per_class: int = 500
    extra_root: str = ""  # full: the extra images (ImageNet-21K) in class folders; mini: the world's extra split
    # `--set` overrides of the targets' TrainConfig (results.make --set / make SET=...), applied after the
    # architecture's and the row's own recipe, so a smoke run's `input_size=64` holds for every row
    overrides: dict = field(default_factory=dict)



def target_config(cfg: PretrainConfig, arch: str, row: str, seed: int) -> TrainConfig:
    """The target's recipe: the scale's base, then the architecture's model and recipe, then the row's label
    source, then the run's `--set` overrides (which may replace the model's kwargs too)."""
    name, kwargs = arch_model(arch, cfg.scale)
    if row not in ROWS:
        raise KeyError(f"unknown pretraining row '{row}'; known: {', '.join(ROWS)}")
    over = {"model": name, "model_kwargs": kwargs, **ARCH_RECIPES.get(arch, {}).get(cfg.scale, {}),
            **ROWS[row].train, **cfg.overrides}
    return cfg.target.replace(seed=seed, **over)


def annotator_config(cfg: PretrainConfig, name: str = "default") -> AnnotatorConfig:
    """The machine annotator `name` of ANNOTATORS (Fig. 4): the default one, or a variant of its recipe."""
    if name not in ANNOTATORS:
        raise KeyError(f"unknown annotator '{name}'; known: {', '.join(ANNOTATORS)}")
    a = cfg.annotator
    if name == "default":
        return a
    if a.train is None:  # full scale: an external checkpoint per annotator
        var = f"RELABEL_ANNOTATOR_CKPT_{name.upper()}"
        return dataclasses.replace(a, checkpoint=os.environ.get(var, ""), official_maps="")
    over = dict(ANNOTATORS[name])
    train = a.train
    if "width" in over:
        w = over.pop("width")
        kw = dict(train.model_kwargs)
        kw["channels"] = tuple(max(4, round(c * w)) for c in kw["channels"])
        kw["stem_width"] = max(4, round(kw.get("stem_width", 64) * w))
        train = train.replace(model_kwargs=kw)
    return dataclasses.replace(a, train=train.replace(**over))


def get_config(scale: str = "mini", **overrides) -> PretrainConfig:
    if scale == "mini":
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cfg = PretrainConfig(
            scale="mini",
            data_root=os.environ.get("RELABEL_DATA", os.path.join(repo, "data")),
            # No flips: the objects are digits, which a mirror turns into other shapes. 30 epochs: soft (pooled)
            # targets need a longer schedule than one-hot ones — at 10 epochs even oracle maps lose to the original
            # labels (46.0 vs 49.9 val top-1), at 30 they win (57.7 vs 55.7; README, "mini recipe"). bf16 on CPUs
            # that compute it natively (~2.4x faster here; same accuracy within seed noise).
            target=TrainConfig(num_classes=10, input_size=48, epochs=30, batch_size=128, lr=0.2,
                               weight_decay=5e-4, warmup_epochs=1.0, color_jitter=0.2, hflip=0.0, ckpt_every=400,
                               amp_cpu=True),
            annotator=AnnotatorConfig(
                # The L2's role (issue 15): a wider, deeper ResNet-18 than the target (2.8 M vs 0.5 M parameters)
                # at twice the targets' resolution (the 48 px images upsampled to 96; the paper: 475 vs 224), trained
                # on the train split with its single labels plus the extra split (the paper's L2: ImageNet + JFT),
                # AdamW at lr 1e-2 (1e-3 / 2e-3 / 6e-3 / 1.5e-2 / 3e-2 gave 55.5 / 58.3 / 64.1 / 64.1 / 63.7 val
                # top-1 in a 64 px, 8-epoch prototype), read at output stride 16 → the same 6×6 map as before.
                train=TrainConfig(model="resnet18", model_kwargs={"layers": (2, 2, 2, 2),
                                                                 "channels": (32, 64, 128, 256), "stem_width": 32},
                                  num_classes=10, input_size=96, crop_scale=(0.3, 1.0), epochs=25,
                                  batch_size=128, optimizer="adamw", lr=1e-2, weight_decay=0.05,
                                  warmup_epochs=0.5, color_jitter=0.0, hflip=0.0, ckpt_every=400, amp_cpu=True),
                input_size=96, read_kwargs={"output_stride": 16}, train_splits=("extra", "train")),
            eval_input=48, eval_crop_ratio=1.0, workers=0, cache_images=True)
    elif scale == "full":
        env = os.environ.get
        cfg = PretrainConfig(
            scale="full", data_root=env("IMAGENET_ROOT", "/data/imagenet"),
            target=TrainConfig(num_classes=1000, input_size=224, epochs=300, batch_size=1024, lr=0.1,
                               weight_decay=1e-4, warmup_epochs=5.0, color_jitter=0.4, ckpt_every=1000),
            annotator=AnnotatorConfig(train=None, input_size=475, checkpoint=env("RELABEL_ANNOTATOR_CKPT", ""),
                                      official_maps=env("RELABEL_OFFICIAL_MAPS", "")),
            eval_input=224, eval_crop_ratio=0.875, workers=8, clean_list=env("RELABEL_CLEAN_LIST", ""),
            extra_per_class=4000, extra_root=env("IMAGENET21K_ROOT", ""))
    else:
        raise ValueError(f"scale must be 'mini' or 'full', got '{scale}'")
    cfg = cfg.replace(**overrides) if overrides else cfg
    return apply_set(cfg, active_overrides())


def apply_set(cfg: PretrainConfig, overrides: dict) -> PretrainConfig:
    """`--set key=value` overrides (results.make, `make SET=...`): a PretrainConfig field (`workers`, `eval_input`,
    ...) or a field of the targets' TrainConfig (`epochs`, `batch_size`, `input_size`, `lr`, ...), which then
    holds for every row. Evaluation follows an overridden `input_size` unless `eval_input` is set too."""
    if not overrides:
        return cfg
    top_names = {f.name for f in dataclasses.fields(PretrainConfig)} - {"scale", "target", "annotator", "overrides"}
    train_names = {f.name for f in dataclasses.fields(TrainConfig)} - {"seed"}
    bad = sorted(set(overrides) - top_names - train_names)
    if bad:
        raise ConfigError(f"unknown --set key(s) {bad}: a key is a field of the pretraining recipe "
                          f"({', '.join(sorted(train_names))}) or of the run ({', '.join(sorted(top_names))})")
    top = {k: v for k, v in overrides.items() if k in top_names}
    train = {k: v for k, v in overrides.items() if k in train_names}
    if "input_size" in train and "eval_input" not in top:
        top["eval_input"] = train["input_size"]
    try:
        cfg.target.replace(**train)  # a value of the wrong kind fails here, before any run starts
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--set: {e}") from None
    return cfg.replace(**top, overrides={**cfg.overrides, **train})

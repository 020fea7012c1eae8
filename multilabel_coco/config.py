"""Table 10 configs: `get_config(scale, arch, row)` → a frozen MultiLabelConfig (one COCO multi-label run).

Rows (paper, ResNet-50 / ResNet-101 mAP): 'baseline' — BCE on multi-hot image labels (69.0 / 76.6); 'machine' —
BCE on LabelPooling of a multi-label classifier's label maps (72.7 / 79.0); 'oracle' — BCE on LabelPooling of
label maps made from COCO's instance masks (73.2 / 80.9). multilabel_coco/targets.py says how pooled values
become BCE targets (`relabel_variant`).

Full scale is the paper's protocol (Appendix D.4): torchvision's ImageNet-pretrained ResNet-50/101 (timm
`resnet50.tv_in1k` / `resnet101.tv_in1k`), a new 80-way FC, AdamP lr 2e-4, wd 0.01, cosine, batch 128, input 224
(R50) / 448 (R101), machine maps from a TResNet-XL at 640 (mAP 88.4). Not stated there and chosen here:
40 epochs, RandomResizedCrop(0.08–1) + flip + colour jitter 0.4 (the random crop is what LabelPooling needs;
§4.3: "random crop augmentation is a popular recipe for multi-label training"), evaluation on the whole image
resized to the input size, label maps on the 20×20 grid of the TResNet-XL at 640. Nothing downloads here: the
torchvision weights enter as a local file, `RELABEL_COCO_INIT_RESNET50=/path/r50.safetensors` (and
`RELABEL_COCO_INIT_RESNET101`), any `.safetensors`/`.pth` a `python -m relabel.checkpoint convert` accepts — e.g.
torchvision's `resnet50-0676ba61.pth` or timm's hub `model.safetensors` of `resnet50.tv_in1k` — without either,
the run asks timm's hub and stops in one sentence naming the variable when the hub cannot be reached.

Mini scale: the mini world's COCO split (600 train / 300 val images, 10 digit classes, 48–64 px), the mini
ResNet-50/101 of the pretraining tables trained on the world's ImageNet-like split (`pretrain/<arch>/original`,
seed 0 — one pretrained checkpoint for every seed, as the paper starts every run from one torchvision
checkpoint), 200 AdamP steps of 64 (~30 s per run on one core), 6×6 label maps. The machine annotator is the
world's extra-split annotator (the pretraining tables' "EfficientNet-L2", wider and deeper than the targets)
fine-tuned here with BCE for 400 steps on the extra split (10k single-object images, one-hot) together with COCO
train (multi-hot), with light crops — the TResNet-XL role: a multi-label classifier clearly stronger than the
targets (measured: ~49 val mAP against ~42–45 for the targets; fine-tuned on the 600 COCO images alone it
overfits and stays at the targets' level) — read fully-convolutionally at output stride 8.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from relabel.configs import StrictConfig
from relabel.launch import RecipeUnavailable
from relabel.records import file_sha256
from relabel.train import TrainConfig

ARCHS = ("resnet50", "resnet101")
INIT_KINDS = ("experiment:", "timm:", "file:")
# Full scale's local init file per arch (torchvision's ImageNet weights, which the hub would otherwise serve).
INIT_ENV = {arch: f"RELABEL_COCO_INIT_{arch.upper()}" for arch in ARCHS}
# TrainConfig overrides per row: the label source and, for ReLabel, the pooled-target rule (targets.py).
ROWS = {
    "baseline": {"label": "multihot"},
    "machine": {"label": "relabel", "relabel_variant": "ml_sigmoid"},
    "oracle": {"label": "relabel", "relabel_variant": "ml_overlap"},
}


@dataclass(frozen=True)
class CocoAnnotatorConfig(StrictConfig):
    """The machine annotator: a timm multi-label classifier read fully-convolutionally (relabel.fully_conv)."""
    checkpoint: str = ""  # full: a .safetensors/.pth multi-label checkpoint (classes in COCO's sorted-id order)
    arch: str = ""  # full: timm name when the checkpoint does not say (e.g. 'tresnet_xl')
    init: str = ""  # mini: launcher experiment whose checkpoint it is fine-tuned from
    train: TrainConfig | None = None  # mini: the fine-tuning recipe (BCE, multi-hot)
    # mini: a class-folder split trained on together with COCO train, each image's folder as a one-hot label
    # (the world's extra split: 10k single-object images, the "extra data" of the pretraining annotator)
    extra_images: str = ""
    input_size: int = 640
    read_kwargs: dict = field(default_factory=dict)  # create_model kwargs for reading (mini: output_stride 8)
    k: int = 10  # classes kept per location
    score_dtype: str = "float16"


@dataclass(frozen=True)
class MultiLabelConfig(StrictConfig):
    """One Table 10 cell at one scale; its dict (with the resolved TrainConfig) goes into every record."""
    scale: str
    arch: str
    row: str
    dataset: str
    train_images: str
    train_annotations: str
    val_images: str
    val_annotations: str
    world: str  # mini: the generated world (built on first use); full: ''
    # Pretrained init: 'experiment:<id>' (a launcher experiment's model.safetensors, seed `init_seed`),
    # 'timm:<name>' (timm's pretrained weights, from its hub) or 'file:<path>' (a local weights file, the
    # architecture `arch`; see INIT_ENV). The classifier is replaced by a new num_classes-way FC.
    init: str
    train: TrainConfig  # the recipe; model/model_kwargs come from the init checkpoint at mini
    annotator: CocoAnnotatorConfig
    map_grid: tuple = (20, 20)  # oracle maps are resized to the machine maps' grid
    oracle_k: int = 5
    init_seed: int = 0
    eval_input: int = 224
    eval_batch: int = 128
    workers: int = 8
    cache_images: bool = False

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got '{self.arch}'")
        if self.row not in ROWS:
            raise ValueError(f"row must be one of {tuple(ROWS)}, got '{self.row}'")
        if not self.init.startswith(INIT_KINDS) or not self.init.partition(":")[2]:
            raise ValueError(f"init must be 'experiment:<id>', 'timm:<name>' or 'file:<path>', got '{self.init}'")


def mini_world() -> Path:
    """The default mini world's folder (data/mini-v1-seed0 under RELABEL_DATA), generated or not."""
    from relabel.data import make_config, world_name
    repo = Path(__file__).resolve().parent.parent
    return Path(os.environ.get("RELABEL_DATA", repo / "data")) / world_name(0, make_config())


def get_config(scale: str, arch: str = "resnet50", row: str = "baseline", seed: int = 0,
               **overrides) -> MultiLabelConfig:
    """Table 10, row `row` of `arch` (paper mAP: R50 69.0 / 72.7 / 73.2, R101 76.6 / 79.0 / 80.9)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got '{arch}'")
    if row not in ROWS:
        raise ValueError(f"row must be one of {tuple(ROWS)}, got '{row}'")
    if scale == "full":
        root = Path(os.environ.get("COCO_ROOT", "/data/coco"))
        size = 224 if arch == "resnet50" else 448
        train = TrainConfig(model=arch, num_classes=80, input_size=size, crop_scale=(0.08, 1.0), color_jitter=0.4,
                            hflip=0.5, epochs=40, batch_size=128, optimizer="adamp", lr=2e-4, weight_decay=0.01,
                            warmup_epochs=1.0, loss="bce", ckpt_every=1000)
        cfg = MultiLabelConfig(
            scale="full", arch=arch, row=row, dataset="coco2017", world="",
            train_images=str(root / "train2017"), train_annotations=str(root / "annotations/instances_train2017.json"),
            val_images=str(root / "val2017"), val_annotations=str(root / "annotations/instances_val2017.json"),
            init=full_init(arch), train=train,
            annotator=CocoAnnotatorConfig(checkpoint=os.environ.get("RELABEL_COCO_ANNOTATOR_CKPT", ""),
                                      arch=os.environ.get("RELABEL_COCO_ANNOTATOR_ARCH", "tresnet_xl"),
                                      input_size=640, k=10, score_dtype="float16"),
            map_grid=(20, 20), oracle_k=10, eval_input=size, eval_batch=128, workers=8)
    elif scale == "mini":
        world = mini_world()
        coco = world / "coco"
        # ~21 epochs of the 600 training images; lr 10× the paper's for a 200-step fine-tune of a small net.
        train = TrainConfig(num_classes=10, input_size=48, crop_scale=(0.08, 1.0), color_jitter=0.2, hflip=0.0,
                            epochs=23, max_steps=200, batch_size=64, optimizer="adamp", lr=2e-3,
                            weight_decay=0.01, warmup_epochs=1.0, loss="bce", ckpt_every=100)
        # the default annotator's resolution (96 px: the 48 px images upsampled), read at stride 16 → a 6×6 map
        annotator_train = train.replace(label="multihot", crop_scale=(0.5, 1.0), epochs=3, max_steps=400,
                                        lr=1e-3, input_size=96)
        cfg = MultiLabelConfig(
            scale="mini", arch=arch, row=row, dataset=f"{world.name}/coco", world=str(world),
            train_images=str(coco / "train"), train_annotations=str(coco / "annotations/instances_train.json"),
            val_images=str(coco / "val"), val_annotations=str(coco / "annotations/instances_val.json"),
            init=f"experiment:pretrain/{arch}/original", train=train,
            annotator=CocoAnnotatorConfig(init="annotator/default", train=annotator_train,
                                      extra_images=str(world / "extra"), input_size=96,
                                      read_kwargs={"output_stride": 16}, k=10, score_dtype="float32"),
            map_grid=(6, 6), oracle_k=5, eval_input=48, eval_batch=150, workers=0, cache_images=True)
    else:
        raise ValueError(f"scale must be 'mini' or 'full', got '{scale}'")
    cfg = cfg.replace(train=cfg.train.replace(seed=seed, **ROWS[row]))
    return cfg.replace(**overrides) if overrides else cfg


def full_init(arch: str) -> str:
    """Full scale's init: the local file of INIT_ENV[arch] when set, else torchvision's weights from timm's hub."""
    path = os.environ.get(INIT_ENV[arch], "")
    return f"file:{path}" if path else f"timm:{arch}.tv_in1k"


def init_identity(init: str) -> dict:
    """What the recipe records of an init file: its name and content hash, never its local path (records stay
    current in another checkout; other weights under the same name make them stale)."""
    kind, _, name = init.partition(":")
    if kind != "file":
        return {"init": init}
    if not Path(name).is_file():
        raise RecipeUnavailable(f"the init file {name} does not exist; point {' or '.join(INIT_ENV.values())} "
                                "at a local .safetensors/.pth of the backbone.")
    return {"init": f"file:{Path(name).name}", "init_sha256": file_sha256(name)}  # cached by path, size, mtime


def annotator_recipe(cfg: MultiLabelConfig) -> dict:
    """What makes the machine annotator: its config (less the local path of the extra split) and the recipe hash
    of the experiment it is fine-tuned from — the machine maps are stale when either changes."""
    from relabel.launch import experiment_recipe_hash
    a = {k: v for k, v in cfg.annotator.to_dict().items() if k != "extra_images"}
    return {**a, "extra_images": bool(cfg.annotator.extra_images),
            "init_recipe_hash": experiment_recipe_hash(cfg.annotator.init, cfg.scale, 0) if a["init"] else None}


def recipe(cfg: MultiLabelConfig) -> dict:
    """A Table 10 run's recipe, as its records store it in config['train']: the trainer's config, where the init
    comes from (with that experiment's own recipe hash, so a retrained backbone makes the cell stale), and what
    makes the row's label maps. No local paths, so records stay current in another checkout."""
    from relabel.launch import experiment_recipe_hash
    kind, _, name = cfg.init.partition(":")
    out = {"train": cfg.train.to_dict(), **init_identity(cfg.init), "init_seed": cfg.init_seed,
           "eval_input": cfg.eval_input,
           "init_recipe_hash": experiment_recipe_hash(name, cfg.scale, cfg.init_seed) if kind == "experiment"
           else None}
    if cfg.row == "machine":
        out.update(annotator=annotator_recipe(cfg), map_grid=list(cfg.map_grid))
    elif cfg.row == "oracle":
        out.update(map_grid=list(cfg.map_grid), oracle_k=cfg.oracle_k)
    return out

"""The one trainer: timm model + label source (one-hot, smoothing, pooled label maps, teacher) + CutMix, resumable.

Every pretraining row of the paper is this loop with other parameters (STYLE.md: one trainer with hooks).
- Label sources (`TrainConfig.label`) come from the registry relabel.labels, one module each: 'onehot' (with
  `label_smoothing`), 'relabel' (LabelPooling of a top-k label-map store over each crop; `relabel_variant` picks the
  Table 2 row or a rule registered by `register_pooled_target`), 'kd' (a teacher's softmax on the crop, Fig. 6),
  'multihot', 'fkd' (stored crop labels replayed). The trainer asks the source for its collate, its training set
  and each batch's soft target, and trains with `loss`: soft cross-entropy (equal to CE / CE with smoothing for
  one-hot) or, multi-label (Table 10, multilabel_coco/), per-class binary cross-entropy ('bce').
- CutMix (`cutmix_prob`) mixes crops and their soft targets by the area-corrected λ (paper §4.3: pooled labels are
  mixed by the CutMix rule); it is switched off for the last `cutmix_off_epochs` epochs as in the official recipe.
- SGD (Nesterov) or AdamP from timm, per-iteration warm-up + cosine (timm's CosineLRScheduler), bf16 autocast on
  CUDA, DDP under `torchrun`.
- Checkpoints every `ckpt_every` steps and every $RELABEL_CKPT_MINUTES (default 5) minutes hold model,
  optimizer, step and RNG state; the data order and augmentation are functions of (seed, epoch, index)
  (relabel.loader), so a killed run resumes exactly, from any step, and says where it resumes.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import timm
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader
from relabel.progress import bar as progress_bar

from relabel.checkpoint import misfit
from relabel.configs import ConfigError, StrictConfig
from relabel import hardware
from relabel.dist import DistInfo, agree, init_distributed
from relabel.records import config_hash
from relabel.stamped import set_aside_stale
from relabel.loader import DataWait, ResumableSampler, TrainSet, _mix, train_transform
from relabel.transforms import Pending
from relabel import labels as label_sources
# what the label-source modules define, under the names sections and tests have imported from the trainer
from relabel.labels.onehot import onehot_target  # noqa: F401
from relabel.labels.relabel import (POOLING_RULES as POOLED_TARGET_RULES, LabelPoolingCollate,  # noqa: F401
                                    register_pooled_target)

LOSSES = ("ce", "bce")  # soft cross-entropy (single-label tasks); per-class binary CE (multi-label, Table 10)


@dataclass(frozen=True)
class TrainConfig(StrictConfig):
    """Everything that decides a training run's result (its hash goes into every record)."""
    model: str = "resnet50"
    model_kwargs: dict = field(default_factory=dict)  # passed to timm.create_model (mini widths/depths)
    num_classes: int = 1000
    input_size: int = 224
    crop_scale: tuple = (0.08, 1.0)
    color_jitter: float = 0.4
    hflip: float = 0.5  # horizontal-flip probability (0 for the mini world's digits, which mirroring changes)
    epochs: int = 300
    max_steps: int = 0  # > 0: stop (and end the cosine) after this many steps instead (fine-tuning: iterations)
    batch_size: int = 1024  # global, over all ranks
    optimizer: str = "nesterov"  # any timm optimizer name: 'nesterov' = SGD Nesterov, 'adamp'
    lr: float = 0.1
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_epochs: float = 5.0
    min_lr: float = 0.0
    label: str = "onehot"
    label_smoothing: float = 0.0
    relabel_variant: str = "localized_multi"  # relabel.labels.relabel.POOLING_RULES
    official_pooling: bool = False
    cutmix_prob: float = 0.0
    cutmix_beta: float = 1.0
    cutmix_off_epochs: int = 0
    loss: str = "ce"  # LOSSES; "bce" with label "multihot" (multi-hot image labels) or a multi-label pooled rule
    drop_path: float = 0.0
    # The EfficientNet recipe (paper App. D.2, timm's components): dropout before the classifier, RandAugment
    # (a timm config string such as 'rand-m9-mstd0.5'), random-erasing probability and Mixup α (0 = off).
    drop_rate: float = 0.0
    randaugment: str = ""
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    # bf16 autocast + channels-last on a CPU that computes bf16 natively (AVX512-BF16 / AMX; ~2.4x faster for the
    # mini models here). CUDA always trains in bf16 autocast.
    amp_cpu: bool = False
    ckpt_every: int = 500  # steps
    seed: int = 0

    def __post_init__(self):
        if self.label not in label_sources.SOURCES:
            raise ValueError(f"label must be one of {label_sources.names()}, got '{self.label}'")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got '{self.loss}'")
        label_sources.SOURCES[self.label].check_config(self)

    # Fields added after runs were recorded, with their defaults: left out of to_dict() while at the default, so
    # the checkpoints (resume check), grid points and config hashes of earlier runs still match.
    _LATER_FIELDS: ClassVar[dict] = {"loss": "ce", "drop_rate": 0.0, "randaugment": "", "random_erasing": 0.0,
                                     "mixup_alpha": 0.0, "amp_cpu": False}

    def to_dict(self) -> dict:
        d = super().to_dict()
        return {k: v for k, v in d.items() if not (k in self._LATER_FIELDS and v == self._LATER_FIELDS[k])}




def train_transform_for(cfg: TrainConfig):
    """The training augmentation a config asks for (crop scale, colour jitter, flip probability, input size)."""
    timm_aug = bool(cfg.randaugment or cfg.random_erasing)  # they edit each image: per-image jitter before them
    t = train_transform(cfg.input_size, cfg.crop_scale, cfg.color_jitter, cfg.hflip, batched=not timm_aug)
    return _with_timm_augment(t, cfg) if timm_aug else t


class _SeededFromTorch:
    """Runs a timm transform (which draws from Python's and NumPy's RNGs) with both seeded from torch's RNG, which
    TrainSet seeds per (seed, epoch, index): the augmentation stays deterministic, so a killed run resumes exactly."""

    def __init__(self, t):
        self.t = t

    def __call__(self, x):
        s = int(torch.randint(2**31 - 1, (1,)))
        py, npy = random.getstate(), np.random.get_state()
        random.seed(s)
        np.random.seed(s)
        try:
            return self.t(x)
        finally:
            random.setstate(py)
            np.random.set_state(npy)

    def __repr__(self):
        return f"Seeded({self.t!r})"


def _with_timm_augment(t, cfg: TrainConfig):
    """Adds timm's RandAugment (on the crop, before ToTensor) and RandomErasing (on the normalised tensor): the
    EfficientNet recipe of App. D.2. They act after the crop, so the crop box LabelPooling reads is unchanged."""
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.random_erasing import RandomErasing
    from torchvision.transforms import ToTensor
    from relabel.loader import IMAGENET_MEAN
    from relabel.transforms import ComposeWithBox
    ts = list(t.transforms)
    if cfg.randaugment:  # translate_const as timm's create_transform sets it: 45% of the image side
        ra = rand_augment_transform(cfg.randaugment, {"translate_const": int(cfg.input_size * 0.45),
                                                      "img_mean": tuple(round(255 * m) for m in IMAGENET_MEAN)})
        ts.insert(next(i for i, x in enumerate(ts) if isinstance(x, ToTensor)), _SeededFromTorch(ra))
    if cfg.random_erasing:
        ts.append(_SeededFromTorch(RandomErasing(cfg.random_erasing, mode="pixel", device="cpu")))
    return ComposeWithBox(ts)


def mixup(x: torch.Tensor, target: torch.Tensor, alpha: float, seed: int):
    """timm's Mixup (batch mode) on soft targets: x and target mixed with the reversed batch by λ ~ Beta(α, α).
    NumPy's RNG (which timm draws λ from) is seeded per step, so a resumed run draws the same λ."""
    from timm.data.mixup import Mixup
    m = Mixup(mixup_alpha=alpha, cutmix_alpha=0.0, label_smoothing=0.0, num_classes=target.shape[1],
              multi_label=True)  # multi_label: mixes dense (soft) targets as given, no one-hot conversion
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        return m(x.clone(), target)
    finally:
        np.random.set_state(state)


def create_model(cfg: TrainConfig) -> nn.Module:
    kw = dict(cfg.model_kwargs)
    if cfg.drop_path:
        kw["drop_path_rate"] = cfg.drop_path
    if cfg.drop_rate:
        kw["drop_rate"] = cfg.drop_rate
    return timm.create_model(cfg.model, pretrained=False, num_classes=cfg.num_classes, **kw)


def load_backbone(model: nn.Module, state: dict) -> None:
    """Loads a pretrained state dict into `model`, keeping `model`'s own classifier if the shapes differ."""
    cls_name = model.default_cfg.get("classifier", "fc") if hasattr(model, "default_cfg") else "fc"
    why = misfit(model, state, head=cls_name)  # the classifier may differ in shape or be absent
    if why:
        raise ValueError(f"checkpoint does not fit {type(model).__name__}: {why}; wrong architecture?")
    own = model.state_dict()
    head = {k for k in state if k in own and own[k].shape != state[k].shape}
    model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of −Σ_c target_c · log softmax(logits)_c (the paper's soft-target loss)."""
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def cutmix_box(h: int, w: int, lam: float, g: torch.Generator) -> tuple[int, int, int, int]:
    """A box of area ≈ (1−λ)·h·w centred uniformly at random (CutMix, Yun et al. 2019), clipped to the image."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (1,), generator=g)), int(torch.randint(w, (1,), generator=g))
    return max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)


def cutmix(x: torch.Tensor, target: torch.Tensor, beta: float, g: torch.Generator):
    """Pastes a box of a shuffled batch into x; targets mixed by the area-corrected λ (rows still sum to 1)."""
    # λ from the caller's generator (not the global RNG), so a resumed run draws the same λ at the same step
    lam = float(np.random.default_rng(int(torch.randint(2**62, (1,), generator=g))).beta(beta, beta))
    perm = torch.randperm(x.shape[0], generator=g).to(x.device)
    y0, y1, x0, x1 = cutmix_box(x.shape[2], x.shape[3], lam, g)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (x.shape[2] * x.shape[3])  # the area actually kept
    return x, lam * target + (1.0 - lam) * target[perm], lam


def _load_last(path: Path, device) -> dict:
    """A run's resume checkpoint; one that cannot be read (cut short by something other than our atomic save, or
    not a checkpoint) is a CheckpointError naming it, never a traceback from inside torch."""
    from relabel.checkpoint import CheckpointError
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, pickle's UnpicklingError, EOFError, … for a damaged file
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"the resume checkpoint {path} cannot be read ({why[:120]}); delete it to train this "
                              "run from the start.") from None
    if not isinstance(state, dict) or "config" not in state:
        raise CheckpointError(f"{path} is not a resume checkpoint of this trainer; delete it to train this run from "
                              "the start.")
    return state


def set_aside_earlier_recipe(train_dir: Path, tcfg) -> Path | None:
    """A run's checkpoints written under an earlier recipe (its records are stale, so `make` runs the cell again)
    are set aside as `<dir>.stale-<old config hash>` (relabel.stamped.set_aside_stale), so the current recipe trains
    afresh instead of the trainer refusing to resume; returns where they went (None if there was nothing stale).
    The trainer's own rule decides: it resumes only into an equal config."""
    last = train_dir / "last.pt"
    if not last.exists():
        return None
    saved = _load_last(last, "cpu")["config"]
    moved = set_aside_stale(train_dir, config_hash(saved), saved == tcfg.to_dict(),
                            "was trained under an earlier recipe")
    return moved[0] if moved else None


def default_device(info: DistInfo) -> torch.device:
    return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def _save(path: Path, state: dict) -> None:
    """Temp file + rename, free space checked first: a kill or a full disk leaves the previous checkpoint intact
    (a full disk is a CheckpointError sentence, the partial temp file removed)."""
    from relabel.atomic_write import atomic_write, tensor_bytes
    from relabel.checkpoint import CheckpointError

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a Python file: a full disk is OSError(ENOSPC), not torch's bare short write
            torch.save(state, f)
    atomic_write(path, write, tensor_bytes(state), what=f"training checkpoint {path}", error=CheckpointError)


CKPT_MINUTES_ENV = "RELABEL_CKPT_MINUTES"
DEFAULT_CKPT_MINUTES = 5.0


def checkpoint_seconds() -> float:
    """How often training saves `last.pt` by the clock, besides every `ckpt_every` steps, so a kill never costs
    more than a few minutes, short runs included: $RELABEL_CKPT_MINUTES (default 5). Not part of TrainConfig: it
    changes no result (a resumed run continues exactly), so it enters no recipe hash."""
    text = os.environ.get(CKPT_MINUTES_ENV, "")
    if not text:
        return DEFAULT_CKPT_MINUTES * 60
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ConfigError(f"{CKPT_MINUTES_ENV} must be a positive number of minutes (e.g. 5 or 0.5), got {text!r}")
    return minutes * 60


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainResult:
    model: nn.Module
    steps: int
    wall_s: float  # training time of this run, summed over resumptions
    images_seen: int
    teacher_forwards: int
    data_wait_s: float = 0.0  # of wall_s, the time the loop waited for the loader's next batch (over resumptions)

    @property
    def data_wait_fraction(self) -> float:
        return self.data_wait_s / self.wall_s if self.wall_s > 0 else 0.0


FINISH_ON = ("auto", "loader", "device")


def finish_on_device(finish_on: str, device: torch.device) -> bool:
    """Where the batched colour jitter + normalisation (`BatchedColorJitterNormalize.finish`) runs: 'device' on the
    training device after the 8-bit batch is copied there, 'loader' in the collate (the loader workers, or in-process
    with workers=0). 'auto': the device on a GPU (where the float passes are free and the copy carries 1 byte a
    pixel, not 4), the loader on a CPU (bench/bench_loader.py: the workers run it beside the step instead of the
    main process after it). The result is the same either way (tests/test_transforms.py), so this is no recipe
    field and enters no config hash."""
    if finish_on not in FINISH_ON:
        raise ConfigError(f"finish_on must be one of {', '.join(FINISH_ON)}, got '{finish_on}'")
    return finish_on == "device" or (finish_on == "auto" and device.type != "cpu")


def train(cfg: TrainConfig, train_set: TrainSet, workdir: str | os.PathLike, *, store=None,
          teacher: nn.Module | None = None, teacher_input_size: int | None = None, workers: int = 0,
          device: torch.device | None = None, progress: bool = True, init: dict | None = None,
          finish_on: str = "auto") -> TrainResult:
    """Trains (or resumes, or returns the finished model of) one run whose checkpoints live in `workdir`.

    The label source `cfg.label` (relabel.labels) is given what it needs: `store`, the label store whose rows are
    `train_set.rows` (a LabelMapStore for 'relabel', a CropLabelStore for 'fkd'); `teacher`, a model in eval mode
    ('kd'), fed the crop resized to `teacher_input_size`. `init` is a state dict to start from
    (fine-tuning a pretrained backbone): its classifier is dropped when the class count differs. `finish_on`:
    where the batched colour jitter runs (`finish_on_device`). The progress line shows the loader's wait and the
    step time per logging interval; the result carries the run's `data_wait_fraction`.
    """
    info = init_distributed()
    device = device or default_device(info)
    amp = device.type == "cuda" or (cfg.amp_cpu and hardware.cpu_bf16_enabled())
    source = label_sources.make_source(cfg, store=store, teacher=teacher, teacher_input_size=teacher_input_size,
                                       amp=amp)
    train_set = source.dataset(train_set)
    if device.type == "cpu":
        hardware.keep_freed_memory()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "last.pt"

    torch.manual_seed(cfg.seed)
    model = create_model(cfg).to(device)
    if init is not None:
        load_backbone(model, init)
    optimizer = create_optimizer_v2(model, cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                               momentum=cfg.momentum)
    sampler = ResumableSampler(len(train_set), cfg.batch_size, cfg.seed, info.rank, info.world)
    spe = sampler.batches_per_epoch
    total = min(cfg.epochs * spe, cfg.max_steps) if cfg.max_steps else cfg.epochs * spe
    scheduler = CosineLRScheduler(optimizer, t_initial=total, lr_min=cfg.min_lr,
                                  warmup_t=round(cfg.warmup_epochs * spe), warmup_lr_init=cfg.lr * 1e-3,
                                  warmup_prefix=True, t_in_epochs=False)
    on_device = finish_on_device(finish_on, device)
    step, wall, teacher_fw, data_wait = 0, 0.0, 0, 0.0
    ckpt_seconds = checkpoint_seconds()  # (not in cfg: when to save changes no result, so it is in no recipe hash)
    if ckpt_path.exists():
        state = _load_last(ckpt_path, device)
        if state["config"] != cfg.to_dict():
            raise RuntimeError(f"{ckpt_path} was written by a run with another config; use a new workdir or "
                               "delete it to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, wall, teacher_fw = state["step"], state["wall_s"], state["teacher_forwards"]
        data_wait = state.get("data_wait_s", 0.0)  # checkpoints before issue 27 did not count it
        _set_rng_state(state["rng"])
        if info.main and step < total:
            print(f"resuming {ckpt_path} at step {step}/{total} ({wall / 60:.1f} min of training behind it)",
                  flush=True)
    if step >= total:
        return TrainResult(model.eval(), step, wall, step * cfg.batch_size, teacher_fw, data_wait)

    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda"
                                                    else None) if info.world > 1 else model
    # channels-last always: oneDNN's fast convolution/pooling layout on CPUs (fp32 too: a mini ResNet-50 step on
    # AVX2 went from ~197 to ~124 ms, model only, one thread) and the tensor-core layout for bf16 on GPUs
    model.to(memory_format=torch.channels_last)
    local_bs = cfg.batch_size // info.world
    bar = progress_bar(total=total, initial=step, disable=not (progress and info.main), unit="step",
               desc=f"train {cfg.model} [{source.tag}]")
    transform = getattr(train_set, "transform", None)
    collate = source.collate(transform, finish=not on_device)
    model.train()
    t_start = time.time()
    waits = DataWait(workers, device)
    last_save = time.monotonic()
    while step < total:
        epoch, start = divmod(step, spe)
        sampler.set_position(epoch, start)
        train_set.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=local_bs, sampler=sampler, num_workers=workers,
                            pin_memory=device.type == "cuda", drop_last=True, persistent_workers=False,
                            collate_fn=collate)
        rng = torch.get_rng_state()
        batches = iter(loader)  # draws the loader's base seed from the global RNG
        if start:  # resumed mid-epoch: an uninterrupted run drew it at the epoch's start, before the checkpoint
            torch.set_rng_state(rng)  # saved this state, so the dropout masks that follow stay the same
        for x, _boxes, _flips, labels, _rows, *extra in waits.timed(batches):
            scheduler.step_update(step)
            labels = labels.to(device, non_blocking=True)
            if isinstance(x, Pending):  # the 8-bit batch (pinned on a GPU run): finished here, on the device
                x = transform.finish_batch(x._replace(pixels=x.pixels.to(device, non_blocking=True)))
            else:
                x = x.to(device, non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                target = source.target(x, labels, extra, device)
            teacher_fw += source.forwards_per_image * x.shape[0]
            if cfg.cutmix_prob > 0 and epoch < cfg.epochs - cfg.cutmix_off_epochs:
                g = torch.Generator().manual_seed(_mix(cfg.seed, step, 0xC7))
                if float(torch.rand(1, generator=g)) < cfg.cutmix_prob:
                    x, target, _ = cutmix(x, target, cfg.cutmix_beta, g)
            if cfg.mixup_alpha > 0:
                x, target = mixup(x, target, cfg.mixup_alpha, _mix(cfg.seed, step, 0x3D))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = ddp(x)
            loss = (soft_cross_entropy(logits, target) if cfg.loss == "ce"
                    else F.binary_cross_entropy_with_logits(logits.float(), target))  # LOSSES
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if step % 10 == 0 or step == total:
                rate = bar.format_dict["rate"] or 0.0
                wait_ms, step_ms = waits.interval()
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}",
                                img_s=f"{rate * cfg.batch_size:.0f}", data_ms=f"{wait_ms:.0f}",
                                step_ms=f"{step_ms:.0f}", refresh=False)
                if info.main and waits.warn(wait_ms, step_ms):
                    bar.write(waits.warning(wait_ms, step_ms))
            due = time.monotonic() - last_save >= ckpt_seconds
            if info.world > 1 and step % 10 == 0:  # every rank saves (or not) at the same step: rank 0's clock
                due = bool(agree(due))
            elif info.world > 1:
                due = False
            if step % cfg.ckpt_every == 0 or step == total or due:
                last_save = time.monotonic()
                if info.main:
                    _save(ckpt_path, {"config": cfg.to_dict(), "model": model.state_dict(),
                                      "optimizer": optimizer.state_dict(), "step": step,
                                      "wall_s": wall + time.time() - t_start, "teacher_forwards": teacher_fw,
                                      "data_wait_s": data_wait + waits.total_s, "rng": _rng_state()})
                if info.world > 1:
                    dist.barrier()
            if step >= total:
                break
    bar.close()
    wall += time.time() - t_start
    return TrainResult(model.eval(), step, wall, step * cfg.batch_size, teacher_fw, data_wait + waits.total_s)

"""Table 7: the background challenge (IN-9, Xiao et al.) — variant accuracies, BG-gap and challenge accuracy.

* Background challenge (Xiao et al.): every foreground of `original/val`, cut out with its mask, is pasted on every
  `only_bg_t` background; it is vulnerable if any composite is misclassified (fine argmax mapped to IN-9, −1 is
  wrong). Composites are built and transformed as uint8 tensors on the device, in growing batches per foreground
  with an early exit at the first miss, so a weak model costs ~N_fg forwards and a strong one ≤ N_fg × N_bg.
* IN-9 input, as the benchmark feeds it (MadryLab/backgrounds_challenge `tools/datasets.py`: `transform_test =
  ToTensor()`): every variant image and composite whole, at its native resolution (224×224 in IN-9), never the
  ImageNet resize-256/centre-crop-224, which zooms in and cuts the border. Only a model evaluated at another size
  than the images' own gets them resized to that size, still uncropped; the record's `bgc_*` params say which.
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from relabel.data.readers import IMAGE_EXTENSIONS, class_folders, read_fg_mask, read_in9, read_in_to_in9
from relabel.dist import batch_shard
from relabel.metrics import coarse_predictions, predict
from relabel.progress import bar as progress_bar
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, PathSet, has_image, normalize_tensor
from relabel.evaluators.unit import Column, DataCheck, Unit
from relabel.loader import load_rgb

IN9_VARIANTS = ("original", "only_bg_b", "only_bg_t", "no_fg", "only_fg", "mixed_same", "mixed_rand", "mixed_next")


def _uint8_chw(path, size=None) -> torch.Tensor:
    img = load_rgb(path)
    if size is not None and img.size != size:
        img = img.resize(size)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _whole_image(x: torch.Tensor, size: int) -> torch.Tensor:
    """The benchmark's IN-9 input from a uint8 batch [B, 3, H, W]: the whole image as [0, 1] floats, normalised
    (the official model wrapper normalises); resized (antialiased bilinear, no crop) only if it is not size×size."""
    if tuple(x.shape[-2:]) != (size, size):
        x = TF.resize(x, [size, size], antialias=True)
    return normalize_tensor(x.float() / 255.0)


class _WholeImage:
    """PIL image -> the benchmark's input tensor [3, size, size] (a class, so DataLoader workers can pickle it)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return _whole_image(x[None], self.size)[0]


def bgc_protocol(ctx: EvalContext, native: tuple[int, int]) -> dict:
    """The record's params for IN-9 images of `native` (width, height): fed whole, resized only if the model's
    eval size differs."""
    s = ctx.input_size
    resized = tuple(native) != (s, s)
    return {"eval_crop_ratio": None, "bgc_native_size": list(native), "bgc_resized_to": s if resized else None,
            "bgc_input": (f"whole {native[0]}x{native[1]} images resized to {s}x{s} (the model's eval size), no crop"
                          if resized else f"whole {s}x{s} images, no resize or crop (official: ToTensor)")}


def _in9(root, variant: str) -> list:
    try:
        return read_in9(root, variant)
    except ValueError as e:
        raise EvalError(str(e)) from None


@torch.no_grad()
def background_challenge(ctx: EvalContext, root, in_to_in9: np.ndarray) -> dict:
    """Challenge accuracy (%) and its counts; see the module docstring for the definition."""
    fgs = _in9(root, "original")
    bgs = _in9(root, "only_bg_t")
    if not fgs or not bgs:
        raise EvalError(f"background-challenge folder {root} has no original/val or only_bg_t/val images.")
    first = load_rgb(fgs[0][0])
    size = first.size
    backgrounds = torch.stack([_uint8_chw(p, size) for p, _ in bgs]).to(ctx.device)
    table = torch.as_tensor(in_to_in9, device=ctx.device)
    ctx.model.eval()
    shard = batch_shard(len(fgs), 1)  # under torchrun each rank takes every world-th foreground
    rows = []  # per foreground: (vulnerable, forwards)
    for i in progress_bar(iterable=shard.indices(), desc="bgc challenge", disable=not ctx.progress or shard.rank > 0,
                          leave=False):
        path, label = fgs[i]
        vulnerable, forwards = 0, 0
        image = _uint8_chw(path, size).to(ctx.device)
        try:
            mask = read_fg_mask(root, path)
        except FileNotFoundError:
            raise EvalError(f"background challenge: no foreground mask for {path} under {root}/fg_mask/val/; "
                            f"expected <bgc>/fg_mask/val/<class>/<stem>.npy.") from None
        mask = torch.as_tensor(mask, device=ctx.device)
        if tuple(mask.shape) != (size[1], size[0]):
            mask = TF.resize(mask[None].float(), [size[1], size[0]],
                             interpolation=TF.InterpolationMode.NEAREST)[0] > 0.5
        start, chunk = 0, 8  # batches grow 8, 16, 32, ...: most vulnerable foregrounds fail in the first one
        while start < len(backgrounds):
            bg = backgrounds[start:start + chunk]
            composite = torch.where(mask[None, None], image[None], bg)
            with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=ctx.device.type == "cuda"):
                logits = ctx.model(_whole_image(composite, ctx.input_size)).float()
            forwards += len(bg)
            if (table[logits.argmax(1)] != label).any():
                vulnerable = 1
                break
            start, chunk = start + len(bg), min(2 * chunk, ctx.batch_size)
        rows.append(torch.tensor([[vulnerable, forwards]], dtype=torch.int64))
    vulnerable, forwards = (int(v) for v in shard.gather(rows).sum(0))
    return {"challenge_acc": 100.0 * (1 - vulnerable / len(fgs)), "n_foregrounds": len(fgs),
            "n_backgrounds": len(bgs), "n_vulnerable": vulnerable, "n_forwards": forwards, "native_size": size}


def evaluate_bgc(ctx: EvalContext) -> EvalResult:
    root = ctx.require(ctx.roots.bgc, "background-challenge (IN-9)", "bgc")
    table_path = ctx.require(root / "in_to_in9.json", "IN-9 class map", "bgc", is_file=True)
    for v in ("original", "only_bg_t"):
        ctx.require(root / v / "val", f"IN-9 {v}", "bgc")
    ctx.require(root / "fg_mask" / "val", "IN-9 foreground-mask", "bgc")
    try:
        in_to_in9 = read_in_to_in9(table_path, ctx.num_classes)
    except ValueError as e:
        raise EvalError(f"{e} Is it the right scale?") from None
    metrics = {}
    for v in IN9_VARIANTS:  # the IN-9 variant accuracies (Xiao et al. Table 1 style)
        if not (root / v / "val").is_dir():
            continue
        samples = _in9(root, v)
        logits = predict(ctx.model, PathSet([p for p, _ in samples], _WholeImage(ctx.input_size)), ctx.batch_size,
                         ctx.workers, ctx.device, desc=f"in9 {v}", progress=ctx.progress)
        pred = coarse_predictions(logits, in_to_in9)
        metrics[f"acc_{v}"] = 100.0 * (pred == torch.as_tensor([y for _, y in samples])).double().mean().item()
    if "acc_mixed_same" in metrics and "acc_mixed_rand" in metrics:
        metrics["bg_gap"] = metrics["acc_mixed_same"] - metrics["acc_mixed_rand"]
    challenge = background_challenge(ctx, root, in_to_in9)
    native = challenge.pop("native_size")
    metrics.update(challenge)
    return EvalResult(metrics, ctx.dataset("in9-background-challenge", "val", metrics["n_foregrounds"], root),
                      {**ctx.base_params(), **bgc_protocol(ctx, native),
                       "bgc_composite": "fg·mask + only_bg_t·(1−mask) as uint8 at the foreground's native size "
                                        "(backgrounds of another size resized to it), then fed as bgc_input says"})


def check(name: str, chk: DataCheck) -> None:
    roots = chk.roots
    root = chk.need(roots.bgc, "background-challenge (IN-9)", "bgc")
    table = chk.need(root / "in_to_in9.json", "IN-9 class map", "bgc", True)
    try:
        read_in_to_in9(table, len(roots.classes))
    except ValueError as e:  # not JSON, not a {index: coarse class} object
        raise chk.wrong(table, "IN-9 class map", "bgc", f"is not this scale's index -> IN-9 class map ({e})") \
            from None
    for sub in ("original/val", "only_bg_t/val", "fg_mask/val"):
        chk.need(root / sub, f"IN-9 {sub.split('/')[0]}", "bgc")
    firsts = []
    for sub in ("original/val", "only_bg_t/val"):
        what = f"IN-9 {sub.split('/')[0]} folder"
        folders = class_folders(root / sub)
        bad = [f.name for f in folders if not f.name.split("_", 1)[0].isdigit()]
        if bad:
            raise chk.wrong(root / sub, what, "bgc", f"has folders {bad[:3]} that are not <NN_class>")
        firsts.append(next((f for f in folders if has_image(f)), None))
        if firsts[-1] is None:
            raise chk.wrong(root / sub, what, "bgc", "holds no images in <NN_class>/ folders")
    image = next(p for p in sorted(firsts[0].iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS)
    chk.need(root / "fg_mask" / "val" / firsts[0].name / f"{image.stem}.npy",
             f"IN-9 foreground mask of {image.name}", "bgc", True)


UNIT = Unit(
    suite="bgc", section="robustness", evaluators={"bgc": evaluate_bgc},
    layout_key="bgc", layout="<bgc>/{original,only_bg_t,mixed_same,mixed_rand,...}/val/<NN_class>/<image>, "
                             "<bgc>/fg_mask/val/<NN_class>/<stem>.npy and <bgc>/in_to_in9.json",
    check=check, full_folder="bg_challenge/", full_tree=("bg_challenge/<variant>/val/ + in_to_in9.json",),
    mini="<world>/bgc/ (relabel.data.bench_splits.write_bgc: IN-9's variants, masks and class map over coarse "
         "groups of the mini classes)",
    columns=(Column("table7", "bgc", "BGC (background challenge)", "bgc", "challenge_acc"),),
    headline={"bgc": (("challenge_acc", "bg_gap", "acc_original"), "challenge / BG-gap / orig.")},
    accuracy=False,  # a challenge accuracy over foregrounds × backgrounds, not a mean over test images
    mini_test_images={"bgc": 0},
)

"""The machine annotator: a timm classifier read fully-convolutionally into per-location class logits.

Paper Appendix B: take the features before global pooling and apply the classifier's FC weights at every
location as a 1×1 convolution (no fine-tuning). When the head is exactly "global average pool → linear",
the spatial mean of that label map IS the model's logit vector (the mean commutes with an affine map),
which the tests check for timm ResNet, EfficientNet and ReXNet. Heads with anything non-linear between
the pooling and the classifier (MobileNetV3's conv_head + activation, ConvNeXt's norm after pooling,
max/avgmax pooling, transformers' token pooling) have no such per-location reading: :func:`label_map`
refuses them with :class:`NotFullyConvolutional` instead of returning a map that silently disagrees
with the model.

The official maps came from timm ``tf_efficientnet_l2_ns_475`` (475×475 input, whole image resized, no
crop, ImageNet mean/std; see docs/references.md); :func:`annotation_transform` builds that preprocessing for
any timm model from its pretrained config.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as nnf

__all__ = ["NotFullyConvolutional", "classifier_weights", "label_map", "topk_label_map", "annotation_transform"]


class NotFullyConvolutional(ValueError):
    """The model's head is not 'global average pool → linear', so it has no per-location label map."""


def classifier_weights(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The final classifier as ``(weight [C, D], bias [C] or None)`` via timm's ``get_classifier()``."""
    name = type(model).__name__
    if not hasattr(model, "get_classifier") or not hasattr(model, "forward_features"):
        raise NotFullyConvolutional(
            f"{name} is not a timm classifier (no get_classifier/forward_features); build it with timm.create_model."
        )
    fc = model.get_classifier()
    if isinstance(fc, nn.Linear):
        return fc.weight, fc.bias
    if isinstance(fc, nn.Conv2d) and fc.kernel_size == (1, 1) and fc.groups == 1:
        return fc.weight.flatten(1), fc.bias
    raise NotFullyConvolutional(
        f"{name}'s classifier is {type(fc).__name__}, not a Linear or 1×1 conv layer; "
        "a label map needs a model with a classification head (num_classes > 0)."
    )


def _check_gap_linear(model: nn.Module, feats: torch.Tensor) -> None:
    """Raise unless ``forward_head(pre_logits=True)`` is the plain spatial mean of the features."""
    pre = model.forward_head(feats, pre_logits=True)
    pre = pre.flatten(1) if pre.ndim > 2 else pre
    mean = feats.mean((2, 3))
    if pre.shape != mean.shape or not torch.allclose(pre.float(), mean.float(), rtol=1e-3, atol=1e-4 * (
            1.0 + mean.abs().max().item())):
        raise NotFullyConvolutional(
            f"{type(model).__name__}'s head is not 'global average pool → linear' (its pre-logits are not the "
            "spatial mean of forward_features), so per-location logits would not average to the model's "
            "logits; use an annotator such as EfficientNet, ResNet or ReXNet with global_pool='avg'."
        )


def label_map(model: nn.Module, images: torch.Tensor, check: bool = True) -> torch.Tensor:
    """Per-location logits ``[B, C, h, w]`` of ``model`` on ``images [B, 3, H, W]`` (paper Appendix B).

    The spatial mean of the result equals ``model(images)``. ``check`` verifies on this batch that the
    head is average-pool → linear (one cheap head pass); the model must be in eval mode, since dropout
    or batch statistics would make the map and the logits differ.
    """
    if model.training:
        raise RuntimeError("label_map needs the annotator in eval mode; call model.eval() first.")
    weight, bias = classifier_weights(model)
    feats = model.forward_features(images)
    if feats.ndim != 4:
        raise NotFullyConvolutional(
            f"{type(model).__name__}.forward_features returns shape {tuple(feats.shape)}, not a [B, D, h, w] feature "
            "map; label maps need a convolutional annotator (e.g. EfficientNet, ResNet, ReXNet)."
        )
    if feats.shape[1] != weight.shape[1]:
        raise NotFullyConvolutional(
            f"{type(model).__name__}'s features have {feats.shape[1]} channels but its classifier takes "
            f"{weight.shape[1]}: the head transforms the pooled features (e.g. MobileNetV3's conv_head), so there "
            "is no per-location label map; use an annotator such as EfficientNet, ResNet or ReXNet."
        )
    if check:
        _check_gap_linear(model, feats)
    # The classifier as a 1×1 conv: the same FC weights applied at every location (Appendix B).
    return nnf.conv2d(feats, weight[:, :, None, None].to(feats.dtype),
                      None if bias is None else bias.to(feats.dtype))


def topk_label_map(maps: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k classes at each location: ``(scores [B, k, h, w], indices [B, k, h, w] int64)``, best first.

    Scores stay raw logits (the official maps store pre-softmax outputs; docs/references.md).
    """
    if not 1 <= k <= maps.shape[1]:
        raise ValueError(f"k must be between 1 and the number of classes ({maps.shape[1]}), got {k}.")
    scores, indices = maps.topk(k, dim=1)
    return scores, indices


def annotation_transform(model: nn.Module, input_size: int | None = None):
    """Annotator preprocessing: the WHOLE image resized to ``input_size``² (no crop), then the model's mean/std.

    Defaults come from the model's timm pretrained config (475 and ImageNet mean/std for the official
    ``tf_efficientnet_l2_ns_475``).
    """
    from timm.data import resolve_data_config
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    cfg = resolve_data_config({}, model=model)
    size = int(input_size or cfg["input_size"][-1])
    interp = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}.get(
        cfg.get("interpolation", "bicubic"), InterpolationMode.BICUBIC)
    return T.Compose([
        T.Resize((size, size), interpolation=interp),  # a square resize: the map must cover the whole image
        T.ToTensor(),
        T.Normalize(cfg["mean"], cfg["std"]),
    ])

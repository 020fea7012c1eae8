"""`TimmBackbone`: our timm checkpoint as an MMDetection backbone (Table 9), registered in mmdet's MODELS.

The adapter rebuilds the checkpoint's timm architecture with `features_only=True` (timm's FeatureListNet keeps
the model's own module names), loads the pretrained weights minus the classifier, and returns the stage outputs
`out_indices` (1..4 = strides 4..32 for a ResNet, what mmdet's FPN expects). It mirrors mmdet's own ResNet
backbone in the two options the standard 1x recipe uses: `frozen_stages` (stem + first `frozen_stages` stages
get no gradient; 1 in the recipe) and `norm_eval` (BatchNorm statistics frozen, as with batch 2 per GPU they
cannot be re-estimated). The feature maps equal the timm model's `forward_intermediates` on the same input
(tests/test_detection.py).
"""
from __future__ import annotations

import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModule

from relabel.checkpoint import CheckpointError
from transfer.backbone import open_backbone


@MODELS.register_module()
class TimmBackbone(BaseModule):
    def __init__(self, checkpoint: str, expect_arch: str | None = None, out_indices=(1, 2, 3, 4),
                 frozen_stages: int = 1, norm_eval: bool = True, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        bb = open_backbone(checkpoint, expect_arch)
        try:
            self.body = bb.create(features_only=True, out_indices=tuple(out_indices))
        except (RuntimeError, AssertionError, ValueError) as e:
            raise CheckpointError(f"timm '{bb.arch}' in {checkpoint} cannot give feature maps {tuple(out_indices)} "
                                  f"({e}); use a CNN backbone with 4 downsampling stages.") from None
        own = self.body.state_dict()
        # FeatureListNet keeps only the modules up to the last requested stage: the classifier (and any
        # post-stage head) is not part of a detector backbone
        self.body.load_state_dict({k: v for k, v in bb.state.items() if k in own}, strict=True)
        self.arch, self.frozen_stages, self.norm_eval = bb.arch, frozen_stages, norm_eval
        self.channels = self.body.feature_info.channels()
        self._freeze()

    def init_weights(self):
        """The weights come from our checkpoint in __init__; mmengine's initialisers must not overwrite them."""
        self._is_init = True

    def _frozen_modules(self) -> list[nn.Module]:
        """Stem + the first `frozen_stages` stages, by timm's own feature_info (module names of each stage)."""
        if self.frozen_stages < 0:
            return []
        stages = self.body.feature_info.info  # every stage the model has, the stem (reduction 2) first
        last = stages[min(self.frozen_stages, len(stages) - 1)]["module"].split(".")[0]
        mods = []
        for name, mod in self.body.named_children():
            mods.append(mod)
            if name == last:
                break
        return mods

    def _freeze(self) -> None:
        for mod in self._frozen_modules():
            mod.eval()
            for p in mod.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x):
        return tuple(self.body(x))

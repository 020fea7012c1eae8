"""'kd': a teacher's softmax on every training crop, forwarded online — Fig. 6's knowledge distillation.

Fig. 6 / App. D.3: CE to the teacher's softmax only (no temperature, no ground truth). The teacher sees the student's
crop resized (bilinear) to the teacher's own input size; each crop costs one teacher forward (Fig. 6's label cost).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from relabel.labels.base import LabelSource, register_label_source


@register_label_source("kd")
class KnowledgeDistillation(LabelSource):
    needs = ("teacher",)
    forwards_per_image = 1

    @classmethod
    def describe(cls, train: dict) -> str:
        return "KD"

    def target(self, x, labels, extra, device):
        p = next(self.teacher.parameters(), None)
        if p is not None and p.device != x.device:  # loaded on the CPU; forwarded where the crops are
            self.teacher.to(x.device)
        size = self.teacher_input_size
        tx = x if not size else F.interpolate(x, size=(size,) * 2, mode="bilinear", align_corners=False)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.amp):
            return torch.softmax(self.teacher(tx).float(), 1)

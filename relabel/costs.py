"""What a model and a training run cost: parameters and multiply-adds of a model, and Fig. 6's cost of one run.

Model statistics are measured, not looked up: parameters counted, multiply-adds ('FLOPs' in the paper's sense)
counted by torch's FlopCounterMode on one forward at the given input size. A run's cost adds the labels' price —
a teacher forward per training crop for knowledge distillation, an annotator forward per annotated image for
ReLabel — to the student's own forwards and backwards; `pretrain/` records it as each target's 'cost' record.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def model_stats(model: torch.nn.Module, input_size: int) -> dict:
    """Parameters (M) and multiply-adds per image (G, 'FLOPs' in the paper's sense) at `input_size`."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    was = model.training
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device))
    model.train(was)
    return {"params_m": params, "gflops": fc.get_total_flops() / 2 / 1e9}


def training_cost(res, student_gflops: float, teacher_gflops: float = 0.0, annotation_s: float = 0.0,
                  annotated: int = 0, annotator_gflops: float = 0.0) -> dict:
    """Fig. 6's cost of one run, measured: wall-clock (training, which includes KD's teacher forwards, plus the
    annotation job a ReLabel row's store took) and multiply-adds (G) spent producing labels — a teacher forward
    per training image for KD, one annotator forward per annotated image for ReLabel. Training the teacher or
    annotator is not counted (the paper takes both pretrained). `annotated`: the annotator's forwards — images for
    a ReLabel store, crops (images × R) for FKD's crop store (so 'annotation_images' counts crops there). `res`: the
    trainer's result (`wall_s`,
    `images_seen`, `teacher_forwards`, `data_wait_fraction`, as relabel.train.TrainResult holds them)."""
    teacher_total = res.teacher_forwards * teacher_gflops
    annotation_total = annotated * annotator_gflops
    return {"wall_s": res.wall_s + annotation_s, "train_wall_s": res.wall_s, "annotation_wall_s": annotation_s,
            "images_seen": res.images_seen, "teacher_forwards": res.teacher_forwards,
            "teacher_gflops": teacher_total, "annotation_images": annotated, "annotation_gflops": annotation_total,
            "label_gflops": teacher_total + annotation_total,
            "student_gflops": 3.0 * res.images_seen * student_gflops,  # forward + backward ≈ 3 forwards
            "total_gflops": 3.0 * res.images_seen * student_gflops + teacher_total + annotation_total,
            # of the training wall time, the share the loop waited for the input pipeline (relabel.train)
            "data_wait_fraction": res.data_wait_fraction}

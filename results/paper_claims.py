"""The paper's claims, as the ledger (results/claims.py) tests them: each a comparison of two table cells, the
paper's Δ transcribed from ../shared/paper/tables.md with where it is made, written before any run.

Kept apart from the ledger's judging so that the list reads as what it is, the pre-registered claims;
tests/test_claims.py checks each paper Δ against results/tables.py's paper numbers where both cells have one.
"""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("more", "less", "same", "ratio")


@dataclass(frozen=True)
class Claim:
    id: str
    ref: str  # where the paper makes it
    kind: str  # 'more': a > b; 'less': a < b; 'same': a ≈ b (an invariance); 'ratio': a / b > 1
    paper: float | None  # the paper's a − b (a / b for 'ratio'); None where only a plot or the text says it
    a: str  # a cell, 'table/row/col'
    b: str
    text: str


C = Claim
BEYOND = "Fig. 6+ (beyond the paper: FKD)"  # claims of a method the paper does not test: no paper Δ, no seeds plan
CLAIMS = (
    # Table 2: localization and multi-labels both matter (78.9 / 78.4 / 78.5 / 77.5 / 77.5)
    C("table2/relabel-localized_single", "Table 2", "more", 0.5, "table2/relabel/top1",
      "table2/localized_single/top1", "Localized multi-labels beat localized single labels (argmax after RoIAlign)"),
    C("table2/relabel-global_multi", "Table 2", "more", 0.4, "table2/relabel/top1", "table2/global_multi/top1",
      "Localized multi-labels beat global multi-labels"),
    C("table2/relabel-global_single", "Table 2", "more", 1.4, "table2/relabel/top1", "table2/global_single/top1",
      "Localized multi-labels beat global single labels"),
    C("table2/global_multi-original", "Table 2", "more", 1.0, "table2/global_multi/top1", "table2/original/top1",
      "Global multi-labels beat the original labels"),
    C("table2/localized_single-original", "Table 2", "more", 0.9, "table2/localized_single/top1",
      "table2/original/top1", "Localized single labels beat the original labels"),
    C("table2/global_single-original", "Table 2", "same", 0.0, "table2/global_single/top1", "table2/original/top1",
      "Global single labels do no better than the original labels"),
    # Table 3: ReLabel beats every other supervision on every evaluation set
    C("table3/relabel-original/val", "Table 3", "more", 1.4, "table3/relabel/val", "table3/original/val",
      "ReLabel beats the original labels on ImageNet val (Tables 2, 4, 5, 6 and Fig. 6 repeat it)"),
    C("table3/relabel-original/v2", "Table 3", "more", 1.5, "table3/relabel/v2", "table3/original/v2",
      "ReLabel beats the original labels on ImageNetV2 (Top-Images)"),
    C("table3/relabel-original/real", "Table 3", "more", 1.4, "table3/relabel/real", "table3/original/real",
      "ReLabel beats the original labels on ReaL"),
    C("table3/relabel-original/shankar", "Table 3", "more", 0.8, "table3/relabel/shankar",
      "table3/original/shankar", "ReLabel beats the original labels on Shankar et al."),
    C("table3/relabel-label_smoothing/val", "Table 3", "more", 0.9, "table3/relabel/val",
      "table3/label_smoothing/val", "ReLabel beats label smoothing on ImageNet val"),
    C("table3/relabel-label_smoothing/v2", "Table 3", "more", 1.0, "table3/relabel/v2", "table3/label_smoothing/v2",
      "ReLabel beats label smoothing on ImageNetV2 (Top-Images)"),
    C("table3/relabel-label_smoothing/real", "Table 3", "more", 1.0, "table3/relabel/real",
      "table3/label_smoothing/real", "ReLabel beats label smoothing on ReaL"),
    C("table3/relabel-label_smoothing/shankar", "Table 3", "more", 1.4, "table3/relabel/shankar",
      "table3/label_smoothing/shankar", "ReLabel beats label smoothing on Shankar et al."),
    C("table3/relabel-label_cleaning/val", "Table 3", "more", 0.8, "table3/relabel/val",
      "table3/label_cleaning/val", "ReLabel beats label cleaning on ImageNet val"),
    C("table3/relabel-label_cleaning/v2", "Table 3", "more", 1.4, "table3/relabel/v2", "table3/label_cleaning/v2",
      "ReLabel beats label cleaning on ImageNetV2 (Top-Images)"),
    C("table3/relabel-label_cleaning/real", "Table 3", "more", 1.4, "table3/relabel/real",
      "table3/label_cleaning/real", "ReLabel beats label cleaning on ReaL"),
    C("table3/relabel-label_cleaning/shankar", "Table 3", "more", 0.9, "table3/relabel/shankar",
      "table3/label_cleaning/shankar", "ReLabel beats label cleaning on Shankar et al."),
    # Table A1: the two V2 variants Table 3 does not show
    C("tableA1/relabel-original/v2_mf", "Table A1", "more", 2.1, "tableA1/relabel/v2_mf", "tableA1/original/v2_mf",
      "ReLabel beats the original labels on ImageNetV2 Matched Frequency"),
    C("tableA1/relabel-original/v2_t07", "Table A1", "more", 1.7, "tableA1/relabel/v2_t07",
      "tableA1/original/v2_t07", "ReLabel beats the original labels on ImageNetV2 Threshold 0.7"),
    # Table 4: every architecture gains (ResNet-50's row is table3/relabel-original/val)
    C("table4/resnet18", "Table 4", "more", 0.8, "table4/resnet18/relabel", "table4/resnet18/vanilla",
      "ReLabel improves ResNet-18"),
    C("table4/resnet101", "Table 4", "more", 2.6, "table4/resnet101/relabel", "table4/resnet101/vanilla",
      "ReLabel improves ResNet-101 (Table 5 repeats it)"),
    C("table4/efficientnet_b0", "Table 4", "more", 0.6, "table4/efficientnet_b0/relabel",
      "table4/efficientnet_b0/vanilla", "ReLabel improves EfficientNet-B0"),
    C("table4/efficientnet_b1", "Table 4", "more", 1.1, "table4/efficientnet_b1/relabel",
      "table4/efficientnet_b1/vanilla", "ReLabel improves EfficientNet-B1"),
    C("table4/efficientnet_b2", "Table 4", "more", 0.7, "table4/efficientnet_b2/relabel",
      "table4/efficientnet_b2/vanilla", "ReLabel improves EfficientNet-B2"),
    C("table4/efficientnet_b3", "Table 4", "more", 0.8, "table4/efficientnet_b3/relabel",
      "table4/efficientnet_b3/vanilla", "ReLabel improves EfficientNet-B3"),
    C("table4/rexnet_100", "Table 4", "more", 0.5, "table4/rexnet_100/relabel", "table4/rexnet_100/vanilla",
      "ReLabel improves ReXNet (×1.0)"),
    # Table 5: each step adds (+ReLabel over the plain models is table3/relabel-original/val and table4/resnet101)
    C("table5/r50_cutmix-r50_relabel", "Table 5", "more", 1.3, "table5/r50_cutmix/top1", "table5/r50_relabel/top1",
      "CutMix adds to ReLabel (ResNet-50)"),
    C("table5/r50_extra-r50_cutmix", "Table 5", "more", 1.0, "table5/r50_extra/top1", "table5/r50_cutmix/top1",
      "Extra re-labelled data adds to ReLabel + CutMix (ResNet-50)"),
    C("table5/r101_cutmix-r101_relabel", "Table 5", "more", 0.9, "table5/r101_cutmix/top1",
      "table5/r101_relabel/top1", "CutMix adds to ReLabel (ResNet-101)"),
    # Table 6: cheaper storage costs nothing; mixing in one-hot labels does
    C("table6/fp16-fp32", "Table 6", "same", -0.1, "table6/fp16/top1", "table6/fp32/top1",
      "A 16-bit label map trains as well as fp32"),
    C("table6/int8-fp32", "Table 6", "same", -0.3, "table6/int8/top1", "table6/fp32/top1",
      "An 8-bit label map trains as well as fp32"),
    C("table6/top1-fp32", "Table 6", "same", None, "table6/top1/top1", "table6/fp32/top1",
      "A top-1 label map trains as well as top-5 (text: k ∈ {1, 3, 5, 10} explored, k = 5 kept; no per-k numbers)"),
    C("table6/top3-fp32", "Table 6", "same", None, "table6/top3/top1", "table6/fp32/top1",
      "A top-3 label map trains as well as top-5 (text only)"),
    C("table6/top10-fp32", "Table 6", "same", None, "table6/top10/top1", "table6/fp32/top1",
      "A top-10 label map trains as well as top-5 (text only)"),
    C("table6/mix-fp32", "Table 6", "less", -0.6, "table6/mix/top1", "table6/fp32/top1",
      "0.5·ReLabel + 0.5·one-hot labels loses to ReLabel alone (text: 78.3)"),
    # Fig. 4: a stronger annotator gives a better target (paper: B1 → 76.1, below the baseline; L2 → 78.9)
    C("fig4/default-w025", "Fig. 4", "more", 2.8, "fig4/default/target", "fig4/w025/target",
      "The default annotator's maps beat the weakest annotator's (×0.25 width)"),
    C("fig4/w025-baseline", "Fig. 4", "less", -1.4, "fig4/w025/target", "fig4/baseline/target",
      "The weakest annotator's maps give a target below the original labels"),
    C("fig4/w05-w025", "Fig. 4", "more", None, "fig4/w05/target", "fig4/w025/target",
      "Target accuracy rises with annotator width: ×0.5 beats ×0.25 (plot)"),
    C("fig4/default-w05", "Fig. 4", "more", None, "fig4/default/target", "fig4/w05/target",
      "Target accuracy rises with annotator width: ×1 beats ×0.5 (plot)"),
    C("fig4/e6-e2", "Fig. 4", "more", None, "fig4/e6/target", "fig4/e2/target",
      "Target accuracy rises with annotator training: 6 epochs beat 2 (plot)"),
    C("fig4/default-e6", "Fig. 4", "more", None, "fig4/default/target", "fig4/e6/target",
      "Target accuracy rises with annotator training: 25 epochs beat 6 (plot)"),
    # Fig. 5: the pooled label's confidence follows the crop's overlap with the object
    C("fig5/iou_gt_05-iou0", "Fig. 5", "more", None, "fig5/ours/conf_iou_gt_05", "fig5/ours/conf_iou0",
      "Pooled-label confidence is higher for crops on the object (IoU > 0.5) than off it (IoU = 0)"),
    # Fig. 6: ReLabel matches KD with a strong teacher at a fraction of the training cost
    C("fig6/relabel-kd_b7", "Fig. 6", "same", -0.2, "fig6/relabel/top1", "fig6/kd_b7/top1",
      "ReLabel matches KD with the strongest teacher (the annotator whose maps ReLabel reads; text: 78.8 vs 79.0)"),
    C("fig6/relabel-kd_b5", "Fig. 6", "same", None, "fig6/relabel/top1", "fig6/kd_b5/top1",
      "ReLabel matches KD with the second-strongest teacher (text: comparable)"),
    C("fig6/relabel-kd_b3", "Fig. 6", "more", None, "fig6/relabel/top1", "fig6/kd_b3/top1",
      "ReLabel beats KD with a weak teacher (×0.5 width; text: B3 is worse)"),
    C("fig6/relabel-kd_b1", "Fig. 6", "more", None, "fig6/relabel/top1", "fig6/kd_b1/top1",
      "ReLabel beats KD with the weakest teacher (×0.25 width; text: B1 is worse)"),
    C("fig6/cost-kd_b7", "Fig. 6", "ratio", 5.74, "fig6/kd_b7/total_gflops", "fig6/relabel/total_gflops",
      "KD with the strongest teacher costs more than ReLabel (paper: 78 / 13.6 GPU-days; ours: GFLOPs per run)"),
    C("fig6/cost-kd_b5", "Fig. 6", "ratio", 3.01, "fig6/kd_b5/total_gflops", "fig6/relabel/total_gflops",
      "KD with the second-strongest teacher costs more than ReLabel (paper: 41 / 13.6 GPU-days; ours: GFLOPs)"),
    # Table 7: every row is more robust than the baseline on every benchmark
    C("table7/relabel/fgsm", "Table 7", "more", 5.6, "table7/relabel/fgsm", "table7/original/fgsm",
      "ReLabel is more robust to FGSM than the original labels"),
    C("table7/relabel/imagenet_a", "Table 7", "more", 2.2, "table7/relabel/imagenet_a", "table7/original/imagenet_a",
      "ReLabel is more accurate on ImageNet-A"),
    C("table7/relabel/imagenet_c", "Table 7", "more", 0.2, "table7/relabel/imagenet_c", "table7/original/imagenet_c",
      "ReLabel is more accurate on ImageNet-C"),
    C("table7/relabel/bgc", "Table 7", "more", 8.7, "table7/relabel/bgc", "table7/original/bgc",
      "ReLabel is more accurate on the background challenge"),
    C("table7/cutmix/fgsm", "Table 7", "more", 16.7, "table7/cutmix/fgsm", "table7/original/fgsm",
      "ReLabel + CutMix is more robust to FGSM than the baseline"),
    C("table7/cutmix/imagenet_a", "Table 7", "more", 6.5, "table7/cutmix/imagenet_a", "table7/original/imagenet_a",
      "ReLabel + CutMix is more accurate on ImageNet-A"),
    C("table7/cutmix/imagenet_c", "Table 7", "more", 19.6, "table7/cutmix/imagenet_c", "table7/original/imagenet_c",
      "ReLabel + CutMix is more accurate on ImageNet-C"),
    C("table7/cutmix/bgc", "Table 7", "more", 8.2, "table7/cutmix/bgc", "table7/original/bgc",
      "ReLabel + CutMix is more accurate on the background challenge"),
    C("table7/extra/fgsm", "Table 7", "more", 19.3, "table7/extra/fgsm", "table7/original/fgsm",
      "ReLabel + CutMix + extra data is more robust to FGSM than the baseline"),
    C("table7/extra/imagenet_a", "Table 7", "more", 19.9, "table7/extra/imagenet_a", "table7/original/imagenet_a",
      "ReLabel + CutMix + extra data is more accurate on ImageNet-A"),
    C("table7/extra/imagenet_c", "Table 7", "more", 26.3, "table7/extra/imagenet_c", "table7/original/imagenet_c",
      "ReLabel + CutMix + extra data is more accurate on ImageNet-C"),
    C("table7/extra/bgc", "Table 7", "more", 10.1, "table7/extra/bgc", "table7/original/bgc",
      "ReLabel + CutMix + extra data is more accurate on the background challenge"),
    # Table 8: a ReLabel backbone transfers better, under the paper's protocol and under an honest one
    C("table8/paper/food101", "Table 8", "more", 0.14, "table8/relabel_paper/food101", "table8/baseline_paper/food101",
      "A ReLabel backbone fine-tunes better on Food-101 (paper protocol: best grid point on test)"),
    C("table8/paper/cars", "Table 8", "more", 0.09, "table8/relabel_paper/cars", "table8/baseline_paper/cars",
      "A ReLabel backbone fine-tunes better on Stanford Cars (paper protocol)"),
    C("table8/paper/dtd", "Table 8", "more", 0.31, "table8/relabel_paper/dtd", "table8/baseline_paper/dtd",
      "A ReLabel backbone fine-tunes better on DTD (paper protocol)"),
    C("table8/paper/aircraft", "Table 8", "more", 3.8, "table8/relabel_paper/aircraft",
      "table8/baseline_paper/aircraft", "A ReLabel backbone fine-tunes better on FGVC Aircraft (paper protocol)"),
    C("table8/paper/pets", "Table 8", "more", 0.36, "table8/relabel_paper/pets", "table8/baseline_paper/pets",
      "A ReLabel backbone fine-tunes better on Oxford Pets (paper protocol)"),
    C("table8/honest/food101", "Table 8", "more", 0.14, "table8/relabel_honest/food101",
      "table8/baseline_honest/food101", "A ReLabel backbone fine-tunes better on Food-101 (honest protocol: grid "
      "point chosen on held-out data; paper Δ is the paper protocol's)"),
    C("table8/honest/cars", "Table 8", "more", 0.09, "table8/relabel_honest/cars", "table8/baseline_honest/cars",
      "A ReLabel backbone fine-tunes better on Stanford Cars (honest protocol)"),
    C("table8/honest/dtd", "Table 8", "more", 0.31, "table8/relabel_honest/dtd", "table8/baseline_honest/dtd",
      "A ReLabel backbone fine-tunes better on DTD (honest protocol)"),
    C("table8/honest/aircraft", "Table 8", "more", 3.8, "table8/relabel_honest/aircraft",
      "table8/baseline_honest/aircraft", "A ReLabel backbone fine-tunes better on FGVC Aircraft (honest protocol)"),
    C("table8/honest/pets", "Table 8", "more", 0.36, "table8/relabel_honest/pets", "table8/baseline_honest/pets",
      "A ReLabel backbone fine-tunes better on Oxford Pets (honest protocol)"),
    # Table 9: a ReLabel backbone detects and segments better
    C("table9/faster_bbox", "Table 9", "more", 0.5, "table9/relabel/faster_bbox", "table9/baseline/faster_bbox",
      "A ReLabel backbone gives Faster R-CNN a higher bbox AP"),
    C("table9/mask_bbox", "Table 9", "more", 0.6, "table9/relabel/mask_bbox", "table9/baseline/mask_bbox",
      "A ReLabel backbone gives Mask R-CNN a higher bbox AP"),
    C("table9/mask_segm", "Table 9", "more", 0.5, "table9/relabel/mask_segm", "table9/baseline/mask_segm",
      "A ReLabel backbone gives Mask R-CNN a higher mask AP"),
    # Table 10: oracle ≥ machine ≥ baseline
    C("table10/r50_machine-r50_baseline", "Table 10", "more", 3.7, "table10/r50_machine/map",
      "table10/r50_baseline/map", "Machine label maps beat multi-hot labels on COCO (ResNet-50)"),
    C("table10/r50_oracle-r50_machine", "Table 10", "more", 0.5, "table10/r50_oracle/map", "table10/r50_machine/map",
      "Oracle label maps beat machine label maps (ResNet-50)"),
    C("table10/r50_oracle-r50_baseline", "Table 10", "more", 4.2, "table10/r50_oracle/map",
      "table10/r50_baseline/map", "Oracle label maps beat multi-hot labels (ResNet-50)"),
    C("table10/r101_machine-r101_baseline", "Table 10", "more", 2.4, "table10/r101_machine/map",
      "table10/r101_baseline/map", "Machine label maps beat multi-hot labels on COCO (ResNet-101)"),
    C("table10/r101_oracle-r101_machine", "Table 10", "more", 1.9, "table10/r101_oracle/map",
      "table10/r101_machine/map", "Oracle label maps beat machine label maps (ResNet-101)"),
    C("table10/r101_oracle-r101_baseline", "Table 10", "more", 4.3, "table10/r101_oracle/map",
      "table10/r101_baseline/map", "Oracle label maps beat multi-hot labels (ResNet-101)"),
    # Beyond the paper (issue 26, written before any FKD record): FKD's crop-level soft labels (Shen & Xing, ECCV
    # 2022: ResNet-50 80.1 against ReLabel's 78.9 at full scale), Fig. 6's extra row, run with `make fig6 EXTRA=1`.
    # Its own family, outside the seeds plan (it runs at Fig. 6's planned seeds).
    C("fig6/fkd-relabel", BEYOND, "more", None, "fig6/fkd/top1", "fig6/relabel/top1",
      "FKD's stored crop-level soft labels beat ReLabel's label maps (Shen & Xing 2022: 80.1 vs 78.9 at full scale)"),
    C("fig6/fkd-original", BEYOND, "more", None, "fig6/fkd/top1", "fig6/original/top1",
      "FKD's stored crop-level soft labels beat the original labels (Shen & Xing 2022)"),
)

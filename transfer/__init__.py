"""Transfer (Tables 8, 9): fine-grained fine-tuning and MMDetection Faster/Mask R-CNN from our backbones.

- `finegrained`: Table 8 — grid over lr × wd of fine-tuning runs with the one trainer; both reporting protocols.
- `grid`: the grid search and the two protocols (best on test = the paper's; selected on holdout = honest).
- `backbone`: opening a pretrained checkpoint of ours, with clear errors for the wrong architecture.
- `timm_backbone`: `TimmBackbone`, our timm checkpoint as a backbone in mmdet's MODELS registry.
- `detection`: Table 9 — our DetectionConfig → mmdet's own 1x config with our backbone/data; train + COCO eval.
- `experiments`: the launcher registrations (`make table8`, `make table9`).
"""

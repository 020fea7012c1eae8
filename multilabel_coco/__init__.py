"""COCO multi-label classification with oracle and machine label maps (Table 10).

config (the Table 10 cells per scale), data (COCO splits → multi-hot), oracle (instance masks → label-map store),
targets (pooled maps → BCE targets), metrics (mAP), pipeline (one run), experiments (launcher registration);
`python -m multilabel_coco` runs one cell by hand.
"""

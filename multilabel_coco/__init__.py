"""COCO multi-label classification with oracle and machine label maps (Table 10)."""

"""Transfer (Tables 8, 9): fine-grained fine-tuning and MMDetection Faster/Mask R-CNN from our backbones."""

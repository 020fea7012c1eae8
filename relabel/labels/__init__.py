"""Label sources: what a training crop is taught with, one module per source, found by name (timm's registry).

`TrainConfig.label` names a source; the trainer (relabel.train.train) asks this registry for it and has no branch
per source. A source is a class registered with `@register_label_source("name")` that says:

* `needs`: what the run must hand the trainer — "store" (a label store the source reads: a label-map store for
  'relabel', a crop-label store for 'fkd'), "teacher" (a model forwarded on every crop) or nothing;
* `collate(transform, finish)`: how a batch is put together in the loader workers (default: `collate_train`;
  'relabel' pools label maps there) — whatever it returns after (x, boxes, flips, labels, rows) reaches
  `target` as `extra`;
* `dataset(train_set)`: the training set it reads (default: as given; 'fkd' replays stored crops);
* `target(x, labels, extra, device)`: the soft target [B, C] of the batch (under no_grad, on the device);
* `losses`: the losses (`TrainConfig.loss`) it can train with, and `forwards_per_image` (model forwards its labels
  cost per training image: 1 for a teacher; Fig. 6's cost);
* `describe(train)`: a few words for a row's recipe (`python -m pretrain --help`).

Built-in sources (each module's docstring says which paper rows it feeds): onehot (with label smoothing),
relabel (LabelPooling, its Table 2 variants and the COCO multi-label rules), kd, multihot, fkd. docs/adding-a-label-
source.md shows how to add one.
"""
from relabel.labels.base import (NEEDS, SOURCES, LabelSource, make_source, names, needs,  # noqa: F401
                                 register_label_source, source_class)
# the built-in sources register themselves on import (as timm's model modules do)
from relabel.labels import onehot, relabel, kd, multihot, fkd  # noqa: E402,F401

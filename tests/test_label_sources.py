"""The label-source registry (relabel/labels/): every source is one module the trainer finds by name, and the
trainer has no branch per source."""
import ast
import inspect

import pytest

from relabel import labels as L
from relabel import train as TR


def test_train_has_no_branch_per_label_source():
    tree = ast.parse(inspect.getsource(TR.train))
    reads = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("label", "relabel_variant",
                                                                                        "official_pooling",
                                                                                        "label_smoothing")]
    assert not reads, f"train() reads cfg.{reads[0].attr} (line {reads[0].lineno}): ask relabel.labels instead"
    for name in ("onehot", "relabel", "kd", "multihot", "fkd"):
        assert f'"{name}"' not in inspect.getsource(TR.train), f"train() names the label source '{name}'"


def test_every_source_is_registered_from_its_own_module_and_says_what_it_needs():
    assert set(L.names()) >= {"onehot", "relabel", "kd", "multihot", "fkd"}
    for name, cls in L.SOURCES.items():
        assert cls.__module__ == f"relabel.labels.{name}" and cls.name == name
        assert set(cls.needs) <= set(L.NEEDS) and set(cls.losses) <= set(TR.LOSSES)
        assert inspect.getmodule(cls).__doc__, f"relabel/labels/{name}.py has no docstring"
        assert isinstance(cls.describe({}), str)


def test_pretraining_rows_use_registered_sources_and_have_a_store_builder():
    from pretrain.config import ROWS
    from pretrain.experiments import STORES
    for row, spec in ROWS.items():
        assert spec.label in L.SOURCES, row
        if spec.uses_store:
            assert spec.label in STORES, f"row {row}: no builder for the store of label '{spec.label}'"


def test_unknown_source_missing_input_and_double_registration_are_refused():
    with pytest.raises(ValueError, match="label must be one of"):
        TR.TrainConfig(label="nope")
    with pytest.raises(ValueError, match="needs a teacher model"):
        L.make_source(TR.TrainConfig(label="kd"))
    with pytest.raises(ValueError, match="trains with loss ce"):
        TR.TrainConfig(label="kd", loss="bce")
    with pytest.raises(ValueError, match="registered twice"):
        @L.register_label_source("onehot")
        class Other(L.LabelSource):
            pass
    assert L.SOURCES["onehot"].__name__ == "OneHot"


def test_pooling_rules_hold_table2_and_the_section_rules():
    import multilabel_coco.targets  # noqa: F401  (registers Table 10's rules)
    from relabel.labels.relabel import POOLING_RULES
    from relabel.pooling import VARIANTS
    assert set(VARIANTS) | {"ml_fraction", "ml_overlap", "ml_sigmoid"} <= set(POOLING_RULES)
    with pytest.raises(ValueError, match="unknown LabelPooling variant"):
        TR.LabelPoolingCollate(None, 4, "nope")

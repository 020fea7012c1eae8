"""The published mini annotator (issue 15): its JSON names the code's recipe and the file's sha256, so the committed
weights cannot go stale silently; mini runs take it (copied into the annotator's workdir) and name it in their
artifacts, and RELABEL_PUBLISHED_ANNOTATOR=0 or another recipe trains the annotator here instead."""
import hashlib
import json

import pytest

from pretrain import artifacts as A
from pretrain.config import get_config
from relabel.records import config_hash

WEIGHTS, META = A.published_paths("mini", "default")


def test_the_published_annotator_matches_the_codes_recipe_and_its_file():
    assert WEIGHTS.is_file() and META.is_file(), f"{WEIGHTS.name} is not published: run `make annotator`"
    info = json.loads(META.read_text())
    cfg = get_config("mini")
    assert info["recipe_hash"] == config_hash(cfg.annotator.recipe()), (
        "the code's default annotator recipe is not the published one: run `make annotator` and commit its files")
    assert info["world"] == A.mini_world_name(), "the published annotator was trained on another mini world"
    assert info["input_size"] == cfg.annotator.input_size and info["read_kwargs"] == cfg.annotator.read_kwargs
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == info["sha256"]
    assert WEIGHTS.stat().st_size <= 25 * 2**20
    assert {"val", "real"} <= set(info["accuracy"])


def test_runs_take_the_published_file_and_name_it(monkeypatch, isolated_runs):
    if not WEIGHTS.is_file():
        pytest.skip("no published annotator")
    cfg = get_config("mini")
    pub = A.published_annotator(cfg)
    assert pub is not None
    ident = A.annotator_identity(cfg)
    assert ident["weights_sha256"] == pub["sha256"]
    assert f"-w{pub['sha256'][:8]}" in A._annotator_tag(cfg, "default")
    # the workdir copy is byte-equal (no training: the world is not even needed for it)
    ckpt = A.annotator_checkpoint(cfg)
    assert ckpt.read_bytes() == WEIGHTS.read_bytes()
    monkeypatch.setenv(A.PUBLISHED_ENV, "0")
    assert A.published_annotator(cfg) is None and "weights_sha256" not in A.annotator_identity(cfg)


def test_another_recipe_does_not_take_the_published_file():
    if not WEIGHTS.is_file():
        pytest.skip("no published annotator")
    cfg = get_config("mini")
    other = cfg.replace(annotator=cfg.annotator.__class__(**{**cfg.annotator.__dict__,
                                                             "train": cfg.annotator.train.replace(epochs=1)}))
    assert A.published_annotator(other) is None

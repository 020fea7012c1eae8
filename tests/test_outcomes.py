"""Per-image outcomes in records (relabel/outcomes.py) and a claim re-judged from the records alone (issue 25)."""
import numpy as np
import pytest

from relabel import outcomes as O
from relabel import records as R
from results import claims, ledger, publish
from results import stats as S


def test_encode_decode_round_trip_and_the_metric_check():
    bits = np.array([1, 0, 1, 1, 0, 0, 1, 1])
    e = O.encode(bits, 1, O.ids_hash(["a.png", "b.png"]), 62.5)
    assert O.decode(e).tolist() == bits.tolist() and e["n"] == 8
    frac = O.decode(O.encode([0, 75, 30], 75, "x"))
    assert frac.tolist() == pytest.approx([0, 1, 0.4])
    assert O.decode(O.encode([0, 300, 299], 300, "x")).tolist() == pytest.approx([0, 1, 299 / 300])  # uint16
    with pytest.raises(O.OutcomeError, match="metric is"):
        O.encode(bits, 1, "x", 50.0)
    with pytest.raises(O.OutcomeError, match="integers"):
        O.encode([0, 2], 1, "x")
    assert O.ids_hash(["a", "b"]) != O.ids_hash(["b", "a"])


def _records(rng, n_images=400, seeds=(0, 1, 2), gain=0.06):
    """Table 3's ReLabel and original val cells at three seeds, with per-image outcomes: ReLabel gets right a
    fixed extra share of the images."""
    ids = O.ids_hash(f"val/{i}.png" for i in range(n_images))
    base = rng.random(n_images)
    out = []
    for seed in seeds:
        for exp, p in (("pretrain/resnet50/relabel", 0.5 + gain), ("pretrain/resnet50/original", 0.5)):
            bits = (base < p + rng.normal(0, 0.01)).astype(int)
            bits ^= rng.random(n_images) < 0.05  # seed-level flips
            top1 = 100 * bits.mean()
            out.append(R.make_record(experiment=exp, evaluator="val", metrics={"top1": top1, "top5": 99.0},
                                     config={"fixture": True}, scale="mini", seed=seed,
                                     dataset={"name": "imagenet-val", "split": "val", "size": n_images},
                                     wall_time_s=1.0, outcomes={"top1": O.encode(bits, 1, ids, top1)}))
    return out


def test_a_claim_with_per_image_records_is_judged_from_them():
    recs = _records(np.random.default_rng(0))
    row = next(r for r in claims.ledger(recs) if r.claim.id == "table3/relabel-original/val")
    assert row.test_noise == "per-image" and row.n == 3
    by = {(r["experiment"].split("/")[-1], r["seed"]): O.decode(r["outcomes"]["top1"]) for r in recs}
    z = 100 * np.stack([by["relabel", s] - by["original", s] for s in (0, 1, 2)])
    iv = S.two_way_interval(z)
    assert (row.interval.lo, row.interval.hi) == (pytest.approx(iv.lo), pytest.approx(iv.hi))
    assert row.verdict == S.directional(iv, +1)


def test_records_that_scored_other_images_fall_back_to_the_binomial():
    recs = _records(np.random.default_rng(1))
    recs[0]["outcomes"]["top1"]["ids"] = "another-test-set"
    row = next(r for r in claims.ledger(recs) if r.claim.id == "table3/relabel-original/val")
    assert row.test_noise == "binomial"


def test_the_ledger_is_rejudged_from_the_records_alone_byte_for_byte(tmp_path):
    """Write records with outcomes, render the ledger, read them back in a fresh list and render again: the same
    bytes (nothing outside the records file enters a verdict)."""
    path = tmp_path / "mini.jsonl"
    for r in _records(np.random.default_rng(2)):
        R.append(path, r)
    first = publish.write_ledger(path, tmp_path / "a", "mini")
    second = publish.write_ledger(path, tmp_path / "b", "mini")
    for x, y in zip(first, second):
        assert x.read_bytes() == y.read_bytes()
    md = (tmp_path / "a" / "claims.md").read_text()
    assert "per-image" in md
    row = next(r for r in claims.ledger(R.read(path)) if r.claim.id == "table3/relabel-original/val")
    assert ledger.interval_text(row) in md


def test_map_entries_round_trip_and_the_weighted_map_is_the_metric():
    from multilabel_coco.metrics import mean_average_precision
    rng = np.random.default_rng(0)
    targets = rng.random((200, 6)) < 0.3
    targets[:, 5] = False  # a class without positives is left out of the mean, as the metric does
    scores = np.round(rng.normal(size=(200, 6)) + targets, 1)  # rounded: ties, which the metric groups
    e = O.encode_scores(scores, targets, "ids")
    s2, t2 = O.decode_scores(e)
    assert np.array_equal(t2, targets) and np.allclose(s2, scores.astype(np.float32))
    assert S.weighted_map(s2, t2, np.ones((1, 200)))[0] == pytest.approx(mean_average_precision(t2, s2)["map"])
    # a bootstrap weight vector is the metric on the resampled images
    idx = rng.integers(0, 200, 200)
    w = np.bincount(idx, minlength=200)[None, :]
    assert S.weighted_map(s2, t2, w)[0] == pytest.approx(mean_average_precision(t2[idx], s2[idx])["map"])


def test_map_claims_count_test_noise_by_a_paired_bootstrap():
    """Table 10's cells with score entries: the ledger's test-set variance is the paired image bootstrap's, and the
    interval is wider than the seeds-only one."""
    rng = np.random.default_rng(1)
    targets = rng.random((300, 5)) < 0.3
    ids = O.ids_hash(str(i) for i in range(300))
    recs = []
    for seed in (0, 1, 2):
        for row, gain in (("machine", 0.6), ("baseline", 0.0)):
            scores = rng.normal(size=targets.shape) + (1.0 + gain) * targets
            m = S.weighted_map(scores, targets, np.ones((1, 300)))[0]
            recs.append(R.make_record(experiment=f"multilabel_coco/resnet50/{row}", evaluator="coco-val",
                                      metrics={"map": float(m)}, config={"fixture": True}, scale="mini", seed=seed,
                                      dataset={"name": "coco", "split": "val", "size": 300}, wall_time_s=1.0,
                                      outcomes={"map": O.encode_scores(scores, targets, ids)}))
    row = next(r for r in claims.ledger(recs) if r.claim.id == "table10/r50_machine-r50_baseline")
    assert row.test_noise == "bootstrap" and row.interval.test_var > 0 and row.n == 3
    seeds_only = S.seed_interval(_diffs(recs))
    assert row.interval.hi - row.interval.lo > seeds_only.hi - seeds_only.lo


def _diffs(recs):
    by = {(r["experiment"].split("/")[-1], r["seed"]): r["metrics"]["map"] for r in recs}
    return [by["machine", s] - by["baseline", s] for s in (0, 1, 2)]

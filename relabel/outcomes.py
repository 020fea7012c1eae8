"""Per-image outcomes in a record: what an evaluator's aggregate is the mean of, one value per test image, so a
verdict can count test-set noise and be re-judged from the records alone (results/stats.py, results/claims.py).

A record's `outcomes` maps a metric name to one entry:

    {"n": 1500, "den": 1, "ids": "3f9a…", "counts": "<base64>"}

`counts` holds n unsigned integers (uint8 when den < 256, else uint16), little-endian, base64-encoded; image i's
outcome is counts[i] / den (den = 1: a correct bit; ImageNet-C: den = corruptions × severities, the fraction of
an image's corrupted copies that are classified right). The metric equals 100 · mean(counts / den) (checked at
write time). `ids` is a short hash of the ordered image identifiers (file names relative to the test set's root),
so two records are paired image by image only when they scored the same images in the same order. 1,500 bits
take 2 KB of JSON; at 10,000 images 13 KB.

A metric that is not a mean over images (mAP: Table 10) keeps what it is computed from instead:

    {"n": 2000, "kind": "scores", "classes": 10, "ids": "…", "scores": "<base64 float32 [n, classes]>",
     "targets": "<base64 packed bits [n, classes]>"}

so the ledger can resample the images (results/stats.py `map_bootstrap_var`).
"""
from __future__ import annotations

import base64
import hashlib
from typing import Iterable, Mapping

import numpy as np

FIELD = "outcomes"


class OutcomeError(ValueError):
    """Outcomes that do not fit their metric or their record."""


def ids_hash(ids: Iterable[str]) -> str:
    """A short hash of an ordered list of image identifiers (relative paths or indices as text)."""
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def encode(counts, den: int, ids: str, metric_value: float | None = None) -> dict:
    """One metric's entry from integer outcomes in [0, den]; with `metric_value` (in %), checks that the metric is
    their mean (to 1e-6 points), so an entry can never disagree with the number it explains."""
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0:
        raise OutcomeError(f"outcomes must be a non-empty vector, got shape {c.shape}")
    if np.any(c < 0) or np.any(c > den) or not np.all(np.equal(np.mod(c, 1), 0)):
        raise OutcomeError(f"outcomes must be integers in [0, {den}]")
    dtype = np.dtype(np.uint8 if den < 256 else np.uint16).newbyteorder("<")
    entry = {"n": int(c.size), "den": int(den), "ids": ids, "counts": base64.b64encode(c.astype(dtype).tobytes()).decode()}
    if metric_value is not None:
        mean = 100.0 * float(c.sum()) / (den * c.size)
        if abs(mean - float(metric_value)) > 1e-6:
            raise OutcomeError(f"outcomes average {mean:.6f}% but the metric is {metric_value:.6f}%")
    return entry


def decode(entry: Mapping) -> np.ndarray:
    """The per-image outcomes (float64, in [0, 1]) of one entry."""
    den, n = int(entry["den"]), int(entry["n"])
    dtype = np.dtype(np.uint8 if den < 256 else np.uint16).newbyteorder("<")
    c = np.frombuffer(base64.b64decode(entry["counts"]), dtype=dtype)
    if c.size != n:
        raise OutcomeError(f"outcomes hold {c.size} values, their header says {n}")
    return c.astype(np.float64) / den


def encode_scores(scores, targets, ids: str) -> dict:
    """A score entry (mAP's evidence): per-image class scores [n, C] (stored as float32) and 0/1 targets [n, C]."""
    sc = np.ascontiguousarray(np.asarray(scores, dtype=np.dtype("<f4")))
    tg = np.asarray(targets)
    if sc.ndim != 2 or sc.shape != tg.shape or not np.isin(tg, (0, 1)).all():
        raise OutcomeError(f"scores and 0/1 targets must both be [n, classes], got {sc.shape} and {tg.shape}")
    return {"n": int(sc.shape[0]), "kind": "scores", "classes": int(sc.shape[1]), "ids": ids,
            "scores": base64.b64encode(sc.tobytes()).decode(),
            "targets": base64.b64encode(np.packbits(tg.astype(np.uint8), axis=None).tobytes()).decode()}


def decode_scores(entry: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """(scores float64 [n, C], targets bool [n, C]) of a score entry."""
    n, c = int(entry["n"]), int(entry["classes"])
    sc = np.frombuffer(base64.b64decode(entry["scores"]), dtype=np.dtype("<f4"))
    bits = np.unpackbits(np.frombuffer(base64.b64decode(entry["targets"]), dtype=np.uint8))[:n * c]
    if sc.size != n * c or bits.size != n * c:
        raise OutcomeError(f"a score entry holds {sc.size} scores / {bits.size} targets, its header says {n} × {c}")
    return sc.astype(np.float64).reshape(n, c), bits.astype(bool).reshape(n, c)


def is_scores(entry: Mapping) -> bool:
    return entry.get("kind") == "scores"


def of(record: Mapping, metric: str) -> Mapping | None:
    """The outcome entry of `metric` in a record, or None (records before per-image outcomes have none)."""
    return (record.get(FIELD) or {}).get(metric)


def paired_scores(records_a: list[Mapping], records_b: list[Mapping], metric: str) -> list | None:
    """[(scores_a, scores_b, targets)] per seed-paired record for a score metric (mAP), or None unless every record
    carries score entries of the same images with the same targets."""
    out, ids = [], None
    for ra, rb in zip(records_a, records_b):
        ea, eb = of(ra, metric), of(rb, metric)
        if ea is None or eb is None or not (is_scores(ea) and is_scores(eb)) or ea["ids"] != eb["ids"] \
                or (ids is not None and ea["ids"] != ids):
            return None
        ids = ea["ids"]
        (sa, ta), (sb, tb) = decode_scores(ea), decode_scores(eb)
        if not np.array_equal(ta, tb):
            return None
        out.append((sa, sb, ta))
    return out or None


def paired_matrix(records_a: list[Mapping], records_b: list[Mapping], metric_a: str, metric_b: str
                  ) -> np.ndarray | None:
    """z[seed, image] = outcome of a − outcome of b (in points: × 100) for seed-paired records, or None when a
    record lacks outcomes or the two sides scored different images (their `ids` differ)."""
    rows, ids = [], None
    for ra, rb in zip(records_a, records_b):
        ea, eb = of(ra, metric_a), of(rb, metric_b)
        if ea is None or eb is None or ea["ids"] != eb["ids"] or (ids is not None and ea["ids"] != ids) \
                or is_scores(ea) or is_scores(eb):
            return None
        ids = ea["ids"]
        rows.append(100.0 * (decode(ea) - decode(eb)))
    return np.stack(rows) if rows else None

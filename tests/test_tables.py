"""The paper's numbers as data: spot checks, and a full comparison with the transcription of the paper's tables."""
import re
from pathlib import Path

import pytest

from results import tables as T

# The transcription of the paper's tables (shared/paper/tables.md beside the checkout), copied into the fixtures
# so the comparison runs in any clone; the copy must stay identical to shared/'s wherever that exists.
TRANSCRIPTION = Path(__file__).resolve().parent / "fixtures" / "paper_tables.md"
SHARED_TRANSCRIPTION = Path(__file__).resolve().parents[2] / "shared" / "paper" / "tables.md"


@pytest.mark.parametrize("table, row, col, value", [
    ("table2", "localized_single", "top1", 78.4), ("table3", "label_smoothing", "shankar", 84.7),
    ("tableA1", "relabel", "v2_mf", 67.3), ("table4", "resnet101", "relabel", 80.7),
    ("table4", "efficientnet_b0", "params", 5.3), ("table5", "r50_extra", "top1", 81.2),
    ("table6", "int8", "top1", 78.6), ("table7", "extra", "imagenet_a", 24.8), ("table8", "relabel_paper",
    "aircraft", 88.89), ("table9", "baseline", "mask_segm", 34.7), ("table10", "r101_oracle", "map", 80.9),
    ("fig2", "ours", "iou_gt_05", 23.5), ("fig6", "kd_b7", "cost", 78.0), ("costs", "store_gb", "value", 10.0),
    ("costs", "pooling_overhead_pct", "value", 0.5), ("costs", "annotation_gpu_h", "value", 10.0)])
def test_paper_spot_checks(table, row, col, value):
    t = T.get(table)
    assert t.row(row).paper[t.col_index(col)] == value


def test_every_target_has_a_spec_and_consistent_shapes():
    assert set(T.TARGETS) <= set(T.ALL)
    for t in T.ALL.values():
        for r in t.rows:
            assert len(r.paper) == len(r.sources) == len(t.cols), (t.name, r.key)
        for d in t.deltas:
            (t.col_index if d.kind == "col" else t.row)(d.a)


def test_unknown_table_is_a_clear_error():
    with pytest.raises(T.UnknownTable, match="unknown table or figure 'table42'"):
        T.get("table42")


def _md_tables(text):
    """{heading prefix: [[cells], ...]} for each '## ...' section's Markdown table rows (header excluded)."""
    out, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading, out[line] = line, []
        elif heading and line.startswith("|") and not set(line) <= set("|-: "):
            out[heading].append([c.strip() for c in line.strip("|").split("|")])
    return {h: rows[1:] for h, rows in out.items()}  # drop the header row


def _num(cell):
    m = re.match(r"[−-]?\d+(\.\d+)?", cell)
    return float(m.group(0).replace("−", "-")) if m else None


@pytest.mark.skipif(not SHARED_TRANSCRIPTION.exists(), reason="shared/paper/tables.md not beside the checkout")
def test_fixture_transcription_is_the_shared_one():
    assert TRANSCRIPTION.read_bytes() == SHARED_TRANSCRIPTION.read_bytes(), (
        f"{TRANSCRIPTION} differs from {SHARED_TRANSCRIPTION}; copy the shared one over it")


def test_all_paper_numbers_match_the_transcription():
    md = _md_tables(TRANSCRIPTION.read_text())
    checked = 0
    for t in T.ALL.values():
        if not t.md_heading:
            continue
        (heading,) = [h for h in md if h.startswith(t.md_heading + " ")]
        by_label = {}  # label -> rows in order (Table 5 repeats "+ ReLabel" for R50 and R101)
        for cells in md[heading]:
            by_label.setdefault(cells[0], []).append(cells[1:])
        for r in t.rows:
            if r.paper_label is None:
                continue
            theirs = [_num(c) for c in by_label[r.paper_label].pop(0)]
            ours = [p for p in r.paper if p is not None]
            assert ours == [x for x in theirs if x is not None], (t.name, r.key)
            checked += 1
    assert checked >= 40

"""Rendering: golden fixture records → table3.{md,tex,csv}, missing cells, seed statistics, figures."""
import os
from pathlib import Path

import pytest

from relabel import records as R
from results import render, tables as T

FIX = Path(__file__).parent / "fixtures"
GOLDEN = FIX / "golden"


def _computed():
    return render.compute(T.TABLE3, R.read(FIX / "table3_records.jsonl"), "mini", (0, 1, 2))


@pytest.mark.parametrize("ext", ["md", "tex", "csv"])
def test_golden_table3(ext):
    c = _computed()
    text = {"md": lambda: render.to_markdown(c, "tests/fixtures/table3_records.jsonl"),
            "tex": lambda: render.to_latex(c), "csv": lambda: render.to_csv(c)}[ext]()
    golden = GOLDEN / f"table3.{ext}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()


def test_paper_and_ours_side_by_side_with_deltas():
    md = render.to_markdown(_computed())
    row = next(l for l in md.splitlines() if l.startswith("| ReLabel |"))
    assert "| 78.9 |" in row and "(n=3)" in row
    assert "| ReLabel − Original | ImageNet val | +1.4 |" in md
    assert "WARNING: built from test fixture records" in md
    assert "Scale: **mini**" in md


def test_missing_cells_show_dash_and_are_listed():
    md = render.to_markdown(_computed())
    row = next(l for l in md.splitlines() if l.startswith("| Label cleaning"))
    assert row.rstrip(" |").endswith("85.2 | — | —")
    assert "## Missing cells (1)" in md and "`pretrain/resnet50/label_cleaning` · evaluator `shankar`" in md


def _rec(seed, value, **kw):
    return R.make_record(experiment="pretrain/resnet50/original", evaluator="val", metrics={"top1": value},
                         config={}, scale=kw.pop("scale", "mini"), seed=seed,
                         dataset={"name": "m", "split": "val", "size": 1}, wall_time_s=0, **kw)


def test_cell_statistics_use_latest_final_record_per_seed():
    recs = [_rec(0, 10.0), _rec(1, 20.0), _rec(1, 30.0), _rec(2, 99.0, final=False), _rec(2, 77.0, scale="full")]
    recs[1]["created"] = "2000-01-01T00:00:00+00:00"  # the older of seed 1's two records
    c = render.compute(T.TABLE3, recs, "mini")
    cell = c.cells["original", "val"]
    assert cell.values == {0: 10.0, 1: 30.0}
    assert cell.mean == 20.0 and cell.std == pytest.approx(14.142136, abs=1e-6)  # sample std, ddof=1


def test_requested_seeds_missing_are_listed():
    c = render.compute(T.TABLE3, [_rec(0, 10.0)], "mini", (0, 1))
    (entry,) = [m for m in c.missing if m[0].key == "original" and m[1].key == "val"]
    assert entry[3] == [1]


def test_paired_delta_over_common_seeds():
    a, b = render.Cell({0: 5.0, 1: 7.0, 2: 9.0}), render.Cell({0: 4.0, 1: 4.0})
    mean, std, n = render._paired(a, b)
    assert (mean, n) == (2.0, 2) and std == pytest.approx(1.414214, abs=1e-6)


def test_figure_png_written_only_with_data(tmp_path):
    src = T.FIG2.plot
    rec = R.make_record(experiment=src.experiment, evaluator=src.evaluator,
                        metrics={"cdf_iou": [0.0, 0.5, 1.0], "cdf": [0.08, 0.76, 1.0], "no_overlap_pct": 8.1,
                                 "iou_gt_05_pct": 24.0}, config={}, scale="mini", seed=0,
                        dataset={"name": "m", "split": "val", "size": 1}, wall_time_s=0)
    paths = render.write_all(render.compute(T.FIG2, [rec], "mini"), [rec], tmp_path)
    assert (tmp_path / "fig2.png") in paths and (tmp_path / "fig2.png").stat().st_size > 5000
    paths = render.write_all(render.compute(T.FIG2, [], "mini"), [], tmp_path)
    assert not (tmp_path / "fig2.png").exists() and "— " in (tmp_path / "fig2.md").read_text()


def test_a_source_made_at_fixed_seeds_is_read_there_only():
    """Fig. 4's annotator accuracy: one annotator (seed 0) serves every target seed, so asking the table for seeds
    0,1,2 reads it once (n = 1) and lists no missing seeds 1–2, instead of averaging copies of one run."""
    recs = [R.make_record(experiment="annotator/w025", evaluator="val", metrics={"top1": 40.0 + s}, config={},
                          scale="mini", seed=s, dataset={"name": "m", "split": "val", "size": 1}, wall_time_s=0)
            for s in (0, 1)]
    c = render.compute(T.get("fig4"), recs, "mini", (0, 1, 2))
    assert c.cells["w025", "annotator"].values == {0: 40.0}
    lacks = {(src.experiment, src.evaluator): lacking for _, _, src, lacking in c.missing}
    assert ("annotator/w025", "val") not in lacks and lacks["annotator/w025", "real"] == [0]
    assert any(src.experiment == "pretrain/resnet50/relabel_ann-w025" and lacking == [0, 1, 2]
               for _, _, src, lacking in c.missing)

"""Published results: the committed records re-render results/mini/ byte for byte; publishing picks exactly the
records the tables read and renders them deterministically; `results.make` reads the committed records."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from relabel import launch, records as R
from results import make, publish, render, tables as T

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures"
COMMITTED = ROOT / "results" / "records" / "mini.jsonl"  # the repository's, whatever RELABEL_PUBLISHED says


def test_committed_rendering_is_reproduced_byte_for_byte(tmp_path):
    if not COMMITTED.is_file():
        pytest.skip("results/records/mini.jsonl is not committed yet: `make publish` writes it after the runs")
    publish.render_published(COMMITTED, tmp_path, "mini")
    problems = publish.differences(ROOT / "results" / "mini", tmp_path)
    assert problems == [], ("results/mini/ no longer matches results/records/mini.jsonl (run `make publish` and commit "
                            "both; PNGs depend on the matplotlib pinned in requirements.txt): " + "; ".join(problems))


# ---- publishing fixture records ---------------------------------------------------------------------------------
def _rec(exp, evaluator, seed, metrics, created="2026-01-02T00:00:00+00:00", scale="mini"):
    return {"schema": 1, "record_id": f"fig-{exp}-{evaluator}-{seed}-{created[:10]}-{scale}", "experiment": exp,
            "evaluator": evaluator, "metrics": metrics, "config": {"fixture": True}, "config_hash": "fixture0000",
            "scale": scale, "seed": seed, "dataset": {"name": "fixture", "split": "val", "size": 1}, "final": True,
            "cells": [], "git": {"sha": "0000000fixture", "dirty": False}, "packages": {}, "host": "fixture",
            "created": created, "wall_time_s": 1.0, "extra": {"fixture": True}}


def _figure_records():
    """Fig. 2 (a curve), Fig. 4 (a scatter with level lines) and Fig. 6's top-1 and GFLOPs, plus what must stay
    behind: an older record of a seed, a record of another scale, a record of no table's experiment."""
    out = [_rec("analysis/crop_iou", "crop_iou", 0, {"no_overlap_pct": 9.0, "iou_gt_05_pct": 21.0,
                                                     "cdf_iou": [0.0, 0.5, 1.0], "cdf": [0.09, 0.79, 1.0]})]
    for i, (key, *_, annotator, target) in enumerate(T._F4):
        out.append(_rec(annotator, "val", 0, {"top1": 60.0 + 2 * i}))
        out += [_rec(target, "val", s, {"top1": 50.0 + i + 0.25 * s}) for s in (0, 1, 2)]
    out += [_rec("pretrain/resnet50/original", "val", s, {"top1": 49.0 - 0.5 * s}) for s in (0, 1, 2)]
    for i, (key, exp, *_) in enumerate(T._F6):
        out += [_rec(exp, "val", s, {"top1": 51.0 + i}) for s in (0, 1)]
        out += [_rec(exp, "cost", s, {"wall_s": 100.0, "label_gflops": 10.0 * (i + 1),
                                      "total_gflops": 100.0 + 10 * (i + 1)}) for s in (0, 1)]
    out += [_rec("pretrain/resnet50/relabel", "cost", s, {"wall_s": 50.0, "label_gflops": 5.0, "total_gflops": 60.0})
            for s in (0, 1)]
    # (the older record of a seed is of another config: a file never holds two records of one measurement, issue 28)
    left_out = [{**_rec("pretrain/resnet50/original", "val", 0, {"top1": 1.0}, created="2025-01-01T00:00:00+00:00"),
                 "config_hash": "fixture0001"},
                _rec("pretrain/resnet50/original", "val", 0, {"top1": 2.0}, scale="full"),
                _rec("no/table/reads/this", "val", 0, {"top1": 3.0})]
    return out, left_out


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Fixture records in runs/records/mini.jsonl (as runs leave them, plus Table 3's fixture file via --records);
    publishing goes to tmp/published (RELABEL_PUBLISHED), never to the repository; nothing is registered."""
    monkeypatch.setenv("RELABEL_PUBLISHED", str(tmp_path / "published"))
    monkeypatch.setattr(launch, "discover", lambda: {})
    kept, left_out = _figure_records()
    runs = R.default_records_path("mini")
    for rec in left_out[:1] + kept[::-1] + left_out[1:]:  # not in the published order
        R.append(runs, rec)
    return kept, left_out


def test_publish_keeps_exactly_the_records_the_tables_read(sources):
    kept, left_out = sources
    publish.publish("mini", [FIX / "table3_records.jsonl"], log=lambda *_: None, allow_fixtures=True)
    path = publish.published_records_path("mini")
    published = R.read(path)
    ids = {r["record_id"] for r in published}
    newer = {(r["experiment"], r["evaluator"], r["seed"]) for r in kept}  # Fig. 4's original/ReLabel val records
    table3 = [r for r in R.read(FIX / "table3_records.jsonl")
              if (r["experiment"], r["evaluator"], r["seed"]) not in newer]
    assert len(table3) == 45 - 6  # a later record of a seed replaces Table 3's fixture one, as in the renderer
    assert ids == {r["record_id"] for r in kept + table3}
    assert not ids & {r["record_id"] for r in left_out}
    keys = [(r["experiment"], r["evaluator"], r["seed"]) for r in published]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # one record per cell read, in a fixed order
    # a publish again (the committed file is now a source too) writes the same bytes
    before = path.read_bytes()
    publish.publish("mini", [FIX / "table3_records.jsonl"], log=lambda *_: None, allow_fixtures=True)
    assert path.read_bytes() == before
    # the published subset renders every table as the full set of records does
    everything = R.read(R.default_records_path("mini")) + R.read(FIX / "table3_records.jsonl")
    for name in T.TARGETS:
        full, sub = (render.compute(T.get(name), recs, "mini") for recs in (everything, published))
        assert {k: c.values for k, c in full.cells.items()} == {k: c.values for k, c in sub.cells.items()}, name


def test_publish_then_render_is_deterministic_including_png(sources, tmp_path):
    publish.publish("mini", [FIX / "table3_records.jsonl"], log=lambda *_: None, allow_fixtures=True)
    path, out = publish.published_records_path("mini"), publish.published_dir("mini")
    names = sorted(p.name for p in out.iterdir())
    assert {"fig2.png", "fig4.png", "fig6.png", "table3.md", "table3.csv", "claims.md", "claims.csv"} <= set(names)
    assert not [n for n in names if n.endswith(".tex")]  # the committed rendering is md + csv + png
    text = (out / "table3.md").read_text()
    assert "Records: `mini.jsonl` — " in text and str(tmp_path) not in text  # no absolute path
    # a second render in a fresh interpreter (other hash seed, fonts loaded anew) gives the same bytes
    again = tmp_path / "again"
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; from results import publish; "
                    "publish.render_published(Path(sys.argv[1]), Path(sys.argv[2]), 'mini')", str(path), str(again)],
                   cwd=ROOT, check=True, env={**__import__("os").environ, "PYTHONHASHSEED": "123"})
    assert publish.differences(out, again) == []
    assert sorted(p.name for p in again.iterdir()) == names


def test_differences_name_a_missing_a_changed_and_a_stray_file(sources, tmp_path):
    publish.publish("mini", [FIX / "table3_records.jsonl"], log=lambda *_: None, allow_fixtures=True)
    out, fresh = publish.published_dir("mini"), tmp_path / "fresh"
    publish.render_published(publish.published_records_path("mini"), fresh, "mini")
    (out / "table3.md").write_text((out / "table3.md").read_text().replace("(n=3)", "(n=4)", 1))
    (out / "fig4.png").write_bytes((out / "fig4.png").read_bytes()[:-1] + b"\0")
    (out / "table2.csv").unlink()
    (out / "table11.md").write_text("left over\n")
    problems = publish.differences(out, fresh)
    assert len(problems) == 4, problems
    assert any("table2.csv is missing" in p for p in problems)
    assert any("table3.md differs from a re-render (line" in p for p in problems)
    assert any("fig4.png differs from a re-render (bytes)" in p for p in problems)
    assert any("table11.md is not rendered from the records" in p for p in problems)
    assert publish.check("mini", log=lambda *_: None) == 1


def test_check_passes_on_a_fresh_publish_and_readme_is_left_alone(sources):
    readme = publish.README.read_text()
    publish.publish("mini", [FIX / "table3_records.jsonl"], log=lambda *_: None, allow_fixtures=True)
    assert publish.check("mini", log=lambda *_: None) == 0
    assert publish.README.read_text() == readme  # a publish outside results/ never rewrites README.md


def test_stale_records_are_not_published(sources, monkeypatch):
    exp = "pretrain/resnet50/original"  # its records carry no config.train: stale under any recipe
    monkeypatch.setattr(launch, "discover", lambda: {exp: launch.Experiment(exp, frozenset({"val"}), lambda c: None,
                                                                            recipe=lambda scale, seed: {"lr": 1})})
    lines = []
    publish.publish("mini", [FIX / "table3_records.jsonl"], log=lines.append, allow_fixtures=True)
    assert exp not in {r["experiment"] for r in R.read(publish.published_records_path("mini"))}
    # 12 of Table 3 (4 evaluators × 3 seeds), 3 of Fig. 4's baseline, its older seed-0 record and its full-scale one
    assert "left out 17 stale record(s)" in lines[0]


def test_publish_errors_are_one_sentence(sources, monkeypatch, capsys):
    assert publish.main(["--records", str(FIX / "table3_records.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "are test fixtures (extra.fixture)" in err and err.count("\n") == 1
    assert publish.main(["--records", "nope.jsonl"]) == 1
    assert capsys.readouterr().err == "error: records file 'nope.jsonl' does not exist\n"
    R.default_records_path("mini").unlink()
    assert publish.main([]) == 1
    assert "no current record of any table at scale mini" in capsys.readouterr().err
    assert publish.main(["--check"]) == 1
    assert "does not exist yet; `make publish` writes it" in capsys.readouterr().err


def test_make_reads_the_committed_records(tmp_path, monkeypatch):
    """A clone with committed records runs nothing for the cells they fill; new runs still go to runs/records/."""
    pub = tmp_path / "published"
    (pub / "records").mkdir(parents=True)
    (pub / "records" / "mini.jsonl").write_bytes((FIX / "table3_records.jsonl").read_bytes())
    monkeypatch.setenv("RELABEL_PUBLISHED", str(pub))
    monkeypatch.setattr(launch, "discover", lambda: {})
    lines = []
    make.make(["table3"], "mini", (0, 1, 2), out_root=tmp_path / "r", log=lines.append, dry_run=True)
    assert [l for l in lines if "MISSING" in l] == [
        l for l in lines if "MISSING  pretrain/resnet50/label_cleaning" in l] and len(lines) == 4  # the one gap
    make.make(["table3"], "mini", (0, 1, 2), out_root=tmp_path / "r", log=lines.append)
    assert "| ReLabel | 78.9 | 64.2 ± 0.6 (n=3) |" in (tmp_path / "r" / "mini" / "table3.md").read_text()
    assert not R.default_records_path("mini").exists()  # nothing ran, nothing appended


def test_a_clone_with_published_records_for_every_cell_runs_nothing(tmp_path, monkeypatch):
    """Records under today's recipes for every cell of every target at seeds 0-2, published, then runs/ removed (a
    fresh clone): `make tables SEEDS=0,1,2` plans no run. Recipes are computed from the code alone (no world, no
    annotator is built)."""
    monkeypatch.setenv("RELABEL_PUBLISHED", str(tmp_path / "published"))
    monkeypatch.setenv("RELABEL_DATA", str(tmp_path / "data"))
    registry = launch.discover()
    recs = {}
    for name in T.TARGETS:
        for src in publish._sources(T.get(name), "mini"):
            for seed in src.seeds or (0, 1, 2):
                if (src.experiment, src.evaluator, seed) not in recs:
                    train = launch._recipe(registry[src.experiment], "mini", seed) if src.experiment in registry else {}
                    recs[src.experiment, src.evaluator, seed] = R.make_record(
                        experiment=src.experiment, evaluator=src.evaluator, metrics={},
                        config={"train": train, "test_sets": launch.expected_test_sets("mini")},
                        scale="mini", seed=seed, dataset={"name": "m", "split": "val", "size": 1}, wall_time_s=0)
                recs[src.experiment, src.evaluator, seed]["metrics"][src.metric] = 50.0 + seed
    for rec in recs.values():
        R.append(R.default_records_path("mini"), rec)
    publish.publish("mini", log=lambda *_: None)
    assert len(R.read(publish.published_records_path("mini"))) == len(recs)
    R.default_records_path("mini").unlink()
    lines = []
    make.make(list(T.TARGETS), "mini", (0, 1, 2), dry_run=True, log=lines.append)
    assert [l for l in lines if "0 run(s) to execute, 0 not registered yet" not in l
            and "nothing to run" not in l] == []
    assert not (tmp_path / "data").exists()

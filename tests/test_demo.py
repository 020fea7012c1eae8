"""`make demo` (issue 17): it trains its runs on the reader's machine even where committed records exist, runs only
the demo's experiments unless --all-rows, and prints each claim's Δ beside the committed records' Δ and verdict."""
import pytest

from relabel import launch, records as R
from results import demo, tables as T

TOP1 = {"pretrain/resnet50/original": 50.0, "pretrain/resnet50/label_smoothing": 51.0,
        "pretrain/resnet50/relabel": 53.0, "pretrain/resnet50/relabel_oracle": 54.0}


def _record(experiment, evaluator, seed, top1):
    metrics = {"no_overlap_pct": 10.0, "iou_gt_05_pct": 20.0} if evaluator == "crop_iou" else {"top1": top1}
    return R.make_record(experiment=experiment, evaluator=evaluator, metrics=metrics,
                         config={"fake": True, "test_sets": launch.expected_test_sets("mini")}, scale="mini",
                         seed=seed, dataset={"name": "fake", "split": "val", "size": 10 ** 6},
                         wall_time_s=0)  # a test set large enough that its binomial noise cannot hide +2.5


def _registry(calls):
    def fake_run(ctx):
        calls.append((ctx.experiment, ctx.seed))
        for ev in ctx.evaluators:
            ctx.append(_record(ctx.experiment, ev, ctx.seed, TOP1.get(ctx.experiment, 49.0)))

    evaluators = {}
    for name in demo.DEMO_TARGETS:
        for row in T.get(name).rows:
            for src in filter(None, row.sources):
                evaluators.setdefault(src.experiment, set()).add(src.evaluator)
    return {e: launch.Experiment(e, frozenset(evs), fake_run) for e, evs in evaluators.items()}, evaluators


def test_the_demo_reruns_its_runs_beside_the_committed_records(monkeypatch, tmp_path, capsys):
    calls = []
    registry, evaluators = _registry(calls)
    monkeypatch.setattr(launch, "discover", lambda: registry)
    committed = tmp_path / "published" / "records" / "mini.jsonl"  # RELABEL_PUBLISHED (tests/conftest.py)
    committed.parent.mkdir(parents=True)
    for e, evs in evaluators.items():  # every cell committed at 3 seeds: ReLabel − original = +2.5 at each
        for seed in (0, 1, 2):
            for ev in evs:
                top1 = TOP1.get(e, 49.0) - (0.5 if e.endswith("/relabel") else 0)
                R.append(committed, _record(e, ev, seed, top1))
    out = tmp_path / "rendered"
    assert demo.main(["--out", str(out), "--jobs", "1"]) == 0
    assert sorted(calls) == sorted((e, 0) for e in demo.DEMO_RUNS)  # trained here, only the demo's runs
    text = capsys.readouterr().out
    line = next(l for l in text.splitlines() if l.startswith("| ReLabel beats the original labels on ImageNet val"))
    assert "| +3.00 |" in line and "+2.50 ± 0.00 (n=3)" in line and line.endswith("| holds |")
    assert "| LabelPooling on oracle maps" in text and "| ReLabel beats the original labels on ReaL" in text
    assert "label cleaning" not in text and "label smoothing" not in text  # their runs are not the demo's
    assert (out / "mini" / "demo.md").read_text().count("\n| ") == 1 + len(demo.demo_claims(demo.DEMO_RUNS))
    assert (out / "mini" / "table3.md").is_file()
    assert demo.main(["--out", str(out), "--jobs", "1"]) == 0 and len(calls) == len(demo.DEMO_RUNS)  # none twice
    assert demo.main(["--out", str(out), "--all-rows", "--jobs", "1"]) == 0  # then the rows the default leaves out
    assert {e for e, _ in calls} == set(evaluators)
    text = capsys.readouterr().out
    assert "label cleaning" in text and "| ReLabel beats label smoothing on ReaL" in text


def test_the_demo_runs_its_runs_at_once_unless_they_are_many(monkeypatch):
    # one thread each (cores // jobs, floored at 1), so each run computes as the committed single-thread runs did
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert demo.default_jobs("mini", all_rows=False) == len(demo.DEMO_RUNS) == 4
    assert demo.default_jobs("mini", all_rows=True) == 2  # nine runs: one per core
    assert demo.default_jobs("full", all_rows=False) == 1
    assert demo.default_jobs("mini", all_rows=False, n_seeds=3) == 2  # twelve runs: one per core
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert demo.default_jobs("mini", all_rows=True) == 9


def test_the_demo_names_the_cpu_class_and_its_measured_time(monkeypatch):
    monkeypatch.setattr(demo, "EXPECTED_MINUTES", {"AVX2": ("~9", "measured")})
    assert "expected ~9 min on 2 cores (measured)" in demo.expected_time("AVX2", False)
    assert "no demo timing measured" in demo.expected_time("DEFAULT", False)
    assert "overrides" in demo.expected_time("bf16-native", False)


def test_a_bad_bf16_switch_is_one_sentence_before_any_run(capsys, monkeypatch):
    monkeypatch.setenv("RELABEL_CPU_BF16", "maybe")
    monkeypatch.setattr(demo.make, "make", lambda *a, **k: pytest.fail("ran something"))
    assert demo.main(["--jobs", "1"]) == 2
    assert "error: RELABEL_CPU_BF16 must be auto, 0 or 1, got 'maybe'" in capsys.readouterr().err

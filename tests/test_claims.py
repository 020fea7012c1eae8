"""The claims ledger: claims name real cells and the paper's numbers, the verdict rule on hand-made cells, the
ledger read from records as the tables read them, and the committed ledger and README block never drift."""
import csv
import hashlib
import io
import math
from pathlib import Path

import pytest

from relabel import records as R
from results import claims, ledger, publish, render, tables as T
from results.claims import CLAIMS, KINDS
from results.render import Cell

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures"
COMMITTED = ROOT / "results" / "records" / "mini.jsonl"  # the repository's, whatever RELABEL_PUBLISHED says


def _paper(key):
    name, row, col = key.split("/")
    spec = T.get(name)
    return spec.row(row).paper[spec.col_index(col)]


def _source(key):
    name, row, col = key.split("/")
    spec = T.get(name)
    return spec.row(row).sources[spec.col_index(col)]


def test_every_claim_compares_two_cells_of_the_tables_once():
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    for c in CLAIMS:
        assert c.kind in KINDS and c.ref.split()[0] in ("Table", "Fig.") and c.a != c.b, c.id
        assert _source(c.a) is not None and _source(c.b) is not None, c.id  # cells we fill (KeyError: no such cell)
    # a comparison two tables repeat (same experiments, evaluator and metric) is one claim
    pairs = [(_source(c.a), _source(c.b)) for c in CLAIMS]
    assert len(set(pairs)) == len(pairs)


def test_paper_deltas_are_the_transcribed_numbers():
    for c in CLAIMS:
        if c.paper is None:  # only a plot or the text's words: the kind carries the claim
            continue
        a, b = c.a, c.b
        if c.kind == "ratio":  # Fig. 6's text: GPU-days, in the cost column of the same rows
            assert c.paper == pytest.approx(_paper(a.replace("total_gflops", "cost")) /
                                            _paper(b.replace("total_gflops", "cost")), abs=0.005), c.id
            continue
        if "_honest/" in a:  # our honest protocol has no paper number: the paper protocol's Δ
            a, b = a.replace("_honest/", "_paper/"), b.replace("_honest/", "_paper/")
        assert c.paper == pytest.approx(_paper(a) - _paper(b), abs=1e-9), c.id
        want = {"more": c.paper > 0, "less": c.paper < 0, "same": abs(c.paper) <= 0.3, "ratio": c.paper > 1}
        assert want[c.kind], f"{c.id}: paper Δ {c.paper} does not fit kind '{c.kind}'"


def _judge(kind, a, b):
    claim = claims.Claim("x", "Table 0", kind, None, "t/a/c", "t/b/c", "x")
    return claims.judge(claim, Cell(dict(enumerate(a))), Cell(dict(enumerate(b))))


@pytest.mark.parametrize("kind, a, b, verdict", [
    # cells made by hand carry no records: seed noise only, the paired t interval at df 2 (t = 4.30)
    # d = (1, 1.2, 0.8): mean 1, SE 0.115, 95% interval [0.50, 1.50]
    ("more", (2, 2.2, 1.8), (1, 1, 1), "holds"),
    ("more", (0, -0.2, 0.2), (1, 1, 1), "opposite"),
    ("less", (0, -0.2, 0.2), (1, 1, 1), "holds"),
    # d = (1, -1, 0.5): mean 0.167, SE 0.60
    ("more", (2, 0, 1.5), (1, 1, 1), "inconclusive"),
    # invariances at the 2-point margin (a hand-made claim's table has none: MIN_EFFECT's default, 2)
    # d = (2, -2, 1): mean 0.33, SE 1.20, 90% interval [−3.2, 3.8]: neither inside nor beyond the margin
    ("same", (3, -1, 2), (1, 1, 1), "inconclusive (invariance)"),
    # d = (1, 1.2, 0.8): 90% interval [0.66, 1.34] inside ±2: equivalent (TOST), although beyond 0
    ("same", (2, 2.2, 1.8), (1, 1, 1), "equivalent"),
    # d = (3, 3.2, 2.8): the 95% interval [2.5, 3.5] lies beyond the +2 margin
    ("same", (4, 4.2, 3.8), (1, 1, 1), "differs"),
    ("ratio", (50, 100), (10, 20), "computed"),
    ("more", (2,), (1,), "single seed"),
    ("more", (2, 2), (), "not run"),
])
def test_verdict_rule(kind, a, b, verdict):
    assert _judge(kind, a, b).verdict == verdict


def test_the_old_two_se_rule_is_kept_for_the_pilots_only():
    claim = claims.Claim("x", "Table 0", "more", None, "t/a/c", "t/b/c", "x")
    # d = (1, -0.2, 1.6): mean 0.8, SE 0.53: > 2·SE is false, so 'within noise'; d = (1, 0.4, 1.6): 'beyond'
    assert claims.judge_2se(claim, Cell({0: 2, 1: 0.8, 2: 2.6}), Cell({0: 1, 1: 1, 2: 1})).verdict == "within noise"
    row = claims.judge_2se(claim, Cell({0: 2, 1: 1.4, 2: 2.6}), Cell({0: 1, 1: 1, 2: 1}))
    assert row.verdict == "holds beyond noise"
    assert claims.judge(claim, Cell({0: 2, 1: 1.4, 2: 2.6}), Cell({0: 1, 1: 1, 2: 1})).verdict == "inconclusive"


def test_a_differs_row_carries_the_p_of_its_own_verdict_so_it_can_survive_holm():
    row = _judge("same", (6, 6.2, 5.8), (1, 1, 1))  # d = (5, 5.2, 4.8): far beyond the 2-point margin
    assert row.verdict == "differs" and row.p < 0.01
    (judged,) = claims._with_holm([row])
    assert judged.holm is True


def test_not_testable_is_declared_at_mini_whatever_the_records_say():
    """The plan declares the background challenge untestable at mini: cells that happen to differ change nothing;
    at full scale the same claim is judged."""
    cid = next(iter(claims.NOT_TESTABLE))
    claim = next(c for c in CLAIMS if c.id == cid)
    a, b = Cell({0: 2.0, 1: 2.2, 2: 1.8}), Cell({0: 1.0, 1: 1.0, 2: 1.0})
    assert claims.judge(claim, a, b, scale="mini").verdict == "not testable at mini"
    assert claims.judge(claim, a, b, scale="full").verdict == "holds"


def test_a_pooled_row_says_whether_every_member_holds_on_its_own():
    """The pooled verdict is about the mean over the cells; the note gives the paper's 'every' (intersection–union):
    one large member can carry the mean while another is inconclusive."""
    fam = claims.Family("t/every", "Table 0", "x", ("t/m1", "t/m2"))
    mk = lambda cid: claims.Claim(cid, "Table 0", "more", None, "t/a/c", "t/b/c", cid)  # noqa: E731
    base = Cell({0: 0.0, 1: 0.0, 2: 0.0})
    cells = {"t/m1": (Cell({0: 9.0, 1: 9.2, 2: 8.8}), base), "t/m2": (Cell({0: 1.0, 1: -1.0, 2: 0.5}), base)}
    rows = {m: claims.judge(mk(m), *cells[m]) for m in fam.members}
    assert [rows[m].verdict for m in fam.members] == ["holds", "inconclusive"]
    pooled = claims.judge_family(fam, rows, cells)
    assert pooled.verdict == "holds"
    assert "not shown, 1 of 2 hold" in claims.note(pooled, list(rows.values()) + [pooled])
    assert ledger.paper_text(fam) == "> 0 (mean of cells)"


def test_an_equivalent_row_whose_interval_excludes_0_says_it_is_not_no_difference():
    """TOST's 'equivalent' bounds the difference by the margin; when the 95% interval also excludes 0 the note says
    so, and only then (the verdict is the pre-registered one either way)."""
    beyond = _judge("same", (2, 2.2, 1.8), (1, 1, 1))  # d = (1, 1.2, 0.8): 95% interval [0.50, 1.50]
    around = _judge("same", (1.1, 0.9, 1.05), (1, 1, 1))  # d = (0.1, −0.1, 0.05): covers 0
    assert beyond.verdict == around.verdict == "equivalent"
    assert "excludes 0" in claims.note(beyond) and "excludes 0" not in claims.note(around)
    assert "excludes 0" not in claims.note(_judge("more", (2, 2.2, 1.8), (1, 1, 1)))
    # d = (1, 1.5, 0.5): 90% interval [0.16, 1.84] (inside ±2, beyond 0), 95% [−0.24, 2.24]: the note reads the 95%
    at90 = _judge("same", (2, 2.5, 1.5), (1, 1, 1))
    assert at90.verdict == "equivalent" and "excludes 0" not in claims.note(at90)


def test_a_seeds_only_row_says_its_interval_leaves_the_test_set_out():
    row = _judge("more", (2, 2.2, 1.8), (1, 1, 1))  # hand-made cells: no records, so seed noise alone
    assert row.test_noise == "seeds only" and "too narrow" in claims.note(row)


def test_pairs_by_seed_and_needs_a_common_one():
    claim = claims.Claim("x", "Table 0", "more", None, "t/a/c", "t/b/c", "x")
    row = claims.judge(claim, Cell({0: 3.0, 1: 5.0, 2: 9.0}), Cell({1: 4.0, 2: 7.0}))
    assert (row.n, row.mean, row.std) == (2, 1.5, pytest.approx(math.sqrt(0.5)))  # seeds 1, 2: d = 1, 2
    assert claims.judge(claim, Cell({0: 1.0}), Cell({1: 1.0})).verdict == "not paired"


def test_ledger_reads_cells_as_the_rendered_tables_do():
    records = R.read(FIX / "table3_records.jsonl")
    rows = {r.claim.id: r for r in claims.ledger(records)}
    r = rows["table3/relabel-original/val"]
    # by hand from tests/fixtures/make_fixture_records.py: d = 4 + (−1.25, 0.5, 0.75); std² = 2.375 / 2
    assert (r.n, r.mean, r.std) == (3, pytest.approx(4.0), pytest.approx(math.sqrt(1.1875)))
    # the fixture's records carry no per-image outcomes: the binomial of the two accuracies on the val size
    assert r.test_noise == "binomial" and r.verdict == "inconclusive" and r.interval.test_var > 0
    ours = {(d[0], d[1]): d[3:] for d in render.delta_rows(render.compute(T.TABLE3, records, "mini"))}
    assert ours["ReLabel − Original", "ImageNet val"] == (pytest.approx(r.mean), pytest.approx(r.std), 3)
    assert rows["table3/relabel-label_cleaning/shankar"].verdict == "not run"  # the fixture's missing cell
    assert rows["table2/relabel-global_multi"].verdict == "not run"
    # a later record of a seed replaces the earlier one, as in the tables: seed 0's d becomes 70 − 60.75
    later = next(x for x in records if x["record_id"] == "fixture-relabel-val-0")
    records.append({**later, "record_id": "later", "created": "2026-02-01T00:00:00+00:00", "metrics": {"top1": 70.0}})
    r = next(x for x in claims.ledger(records) if x.claim.id == "table3/relabel-original/val")
    assert r.mean == pytest.approx((9.25 + 4.5 + 4.75) / 3)


def test_ledger_files_name_scale_records_rule_and_notes(tmp_path, monkeypatch):
    src = tmp_path / "mini.jsonl"
    src.write_bytes((FIX / "table3_records.jsonl").read_bytes())
    monkeypatch.setitem(claims.NOTES, "table3/relabel-original/shankar", "Shankar repeats ReaL at mini scale")
    publish.write_ledger(src, tmp_path / "out", "mini")
    md = (tmp_path / "out" / "claims.md").read_text()
    assert "scale mini" in md and "Mini numbers are not paper-scale numbers" in md
    assert f"`mini.jsonl` — 45 records, sha256 `{hashlib.sha256(src.read_bytes()).hexdigest()[:12]}`" in md
    assert "The **95% interval** of Δ counts seed noise *and* test-set noise" in md
    assert "**85 claims: 11 inconclusive, 74 not run.**" in md
    rows = [l for l in md.splitlines() if l.startswith("| `")]
    table = list(csv.DictReader(io.StringIO((tmp_path / "out" / "claims.csv").read_text())))
    ids = [c.id for c in CLAIMS] + [f.id for f in claims.FAMILIES]
    assert len(rows) == len(table) == len(ids)
    assert [l.split("`")[1] for l in rows] == [t["id"] for t in table] == ids
    row = next(l for l in rows if "table3/relabel-original/shankar" in l)
    assert row.endswith("| +0.8 | +4.00 ± 1.09 | [−8.83, +16.83] | 3 | binomial | inconclusive |  | "
                        "Shankar repeats ReaL at mini scale |")
    assert next(t for t in table if t["id"] == "table2/global_single-original")["paper"] == "0.0"
    pooled = next(t for t in table if t["id"] == "table3/every-set")
    assert pooled["kind"] == "pooled" and pooled["verdict"] == "not run"


def test_without_records_every_claim_is_not_run(tmp_path):
    publish.write_ledger(tmp_path / "mini.jsonl", tmp_path, "mini")
    md = (tmp_path / "claims.md").read_text()
    n = len(CLAIMS) + len(claims.FAMILIES)
    assert f"**{n} claims: {n} not run.**" in md and "not published yet, 0 records" in md


def test_committed_ledger_matches_the_committed_records(tmp_path):
    """results/mini/claims.md and .csv are what `make claims` writes from results/records/mini.jsonl (or from no
    records while none are committed)."""
    publish.write_ledger(COMMITTED, tmp_path, "mini")
    for name in ("claims.md", "claims.csv"):
        assert (ROOT / "results" / "mini" / name).read_bytes() == (tmp_path / name).read_bytes(), \
            f"results/mini/{name} drifted from the committed records (or from results/claims.py): run `make claims`"


def test_readme_block_is_what_make_claims_writes():
    assert publish.readme_now() == publish.readme_block(COMMITTED), "README.md's claims block drifted: `make claims`"
    assert "[results/mini/claims.md](results/mini/claims.md)" in publish.readme_now()


def test_update_readme_rewrites_only_its_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n## Claims at a glance\n<!-- claims:start -->\nold\n<!-- claims:end -->\n\nrest\n")
    publish.update_readme("new block", readme)
    assert readme.read_text() == "# T\n\n## Claims at a glance\n<!-- claims:start -->\nnew block\n<!-- claims:end -->" \
                                 "\n\nrest\n"
    assert publish.readme_now(readme) == "new block"
    readme.write_text("# T\n")
    with pytest.raises(publish.PublishError, match="needs one '<!-- claims:start -->' line"):
        publish.update_readme("x", readme)


def test_make_claims_writes_the_ledger_from_the_published_records_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RELABEL_PUBLISHED", str(tmp_path))
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "mini.jsonl").write_bytes((FIX / "table3_records.jsonl").read_bytes())
    readme = publish.README.read_text()
    assert publish.main(["--claims"]) == 0
    assert "85 claims: 11 inconclusive, 74 not run." in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "mini").iterdir()) == ["claims.csv", "claims.md"]
    assert publish.README.read_text() == readme  # README describes the repository's results only


def test_the_annotators_regime_is_judged_from_records():
    """docs/mini-world.md's criteria (issue 15): error ratio vs the original-label ResNet-50, Fig. 5's rise, and the
    single-object crops; 'not run' without records."""
    assert [v for *_, v in ledger.regime([])] == ["not run"] * 4
    base = R.read(FIX / "table3_records.jsonl")[0]

    def rec(experiment, evaluator, metrics, seed=0):
        return {**base, "experiment": experiment, "evaluator": evaluator, "metrics": metrics, "seed": seed,
                "record_id": f"{experiment}-{evaluator}-{seed}"}
    records = [rec("pretrain/resnet50/original", ev, {"top1": 50.0 + s}, s) for ev in ("val", "real")
               for s in (0, 1, 2)]
    records += [rec("annotator/default", "val", {"top1": 75.0}), rec("annotator/default", "real", {"top1": 70.0})]
    records.append(rec("analysis/label_confidence", "crop_conf", {
        "conf_iou0": 0.3, "conf_iou_gt_05": 0.9, "single_pooled_top1": 94.0, "single_original_agree": 98.0,
        "single_object_crops": 700, "single_other_pooled_top1": 60.0, "single_other_crops": 10}))
    records.append(rec("analysis/label_confidence", "crop_conf", {
        "conf_iou0": 0.5, "conf_iou_gt_05": 0.8, "single_pooled_top1": 90.0, "single_original_agree": 98.0,
        "single_object_crops": 300, "single_other_pooled_top1": 30.0, "single_other_crops": 30}, seed=1))
    got = ledger.regime(records)
    # val: (100 − 75) / (100 − 51) = 0.51 ≤ 0.55; ReaL: 30 / 49 = 0.61; crops pooled over the two seeds by count:
    # single (94·700 + 90·300) / 1000 = 92.8 ≥ 98 − 5; other-class (60·10 + 30·30) / 40 = 37.5 < 50
    assert [v for *_, v in got] == ["met", "not met", "met", "not met"]
    assert "92.8% vs original label 98.0% (1000 crops)" in got[3][1] and "37.5% vs 0% (40 crops)" in got[3][1]
    assert "error ratio 0.51" in got[0][1] and "error ratio 0.61" in got[1][1]


def test_readme_per_table_lines_count_every_claim_once():
    rows = claims.ledger(R.read(COMMITTED), "mini")
    lines = ledger.per_table(rows)
    assert lines[0].startswith("| paper | rows |") and len(lines) == 2 + len({c.ref for c in CLAIMS})
    total = 0
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        n, groups = int(cells[1]), [0 if c == "·" else int(c) for c in cells[2:-3]]
        assert sum(groups) == n, line  # every claim of the table lands in exactly one group
        total += n
    assert total == len(CLAIMS) + len(claims.FAMILIES)


def test_tables_on_fewer_seeds_than_planned_are_marked_interim():
    """While the re-run fills the planned seeds, the ledger says which tables' verdicts are interim."""
    records = R.read(FIX / "table3_records.jsonl")  # 3 seeds of Table 3's cells; the plan gives Table 3 ten
    rows = claims.ledger(records)
    assert ledger.interim(rows) == {"Table 3": (3, claims.PLAN["Table 3"][0])}  # (rows not run are not interim)
    note = ledger.interim_note(rows, "mini")[0]
    assert note.startswith("**Interim: 1 paper table(s)") and "Table 3 (3 of 10)" in note
    line = next(l for l in ledger.per_table(rows) if l.startswith("| Table 3 |"))
    assert "| 3 (interim) | 10 |" in line
    assert ledger.interim_note(rows, "full") == []
    full = [{**r, "seed": r["seed"] + 10 * k} for k in range(4) for r in records]  # 12 seeds: none interim
    assert "Table 3" not in ledger.interim(claims.ledger(full))

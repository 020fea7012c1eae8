"""`python -m bench.bench_loader` (issue 27): a tiny run makes its JPEGs and store, times every pipeline and writes
one JSON with the CPU class, commit and load average; the images are deterministic."""
import json

import numpy as np

from bench import bench_loader, paired


def test_quick_run_writes_every_rate(tmp_path, monkeypatch):
    monkeypatch.setenv("RELABEL_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "loader.json"
    assert bench_loader.main(["--quick", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["images"] == 64 and got["cpu_class"] and got["commit"] and len(got["load_avg_before"]) == 3
    names = set(got["in_process_images_s"])
    assert {"decode (PIL)", "timm create_transform"} <= names
    for pipe in ("legacy", "loader", "device"):
        assert {f"ours {pipe}, original labels", f"ours {pipe}, ReLabel"} <= names
    assert all(v > 0 for v in got["in_process_images_s"].values())
    # one thread in-process: its CPU time cannot much exceed the wall time (a garbage collection inside the timed
    # window once charged ~0.2 s to every figure, 10x the wall time of this smoke run's 64 images)
    wall, per_cpu = got["in_process_images_s"]["decode (PIL)"], got["in_process_images_per_cpu_s"]["decode (PIL)"]
    assert per_cpu > 0.67 * wall
    loaders = got["dataloader"]
    assert any(k.startswith("timm create_loader") for k in loaders) and "ours device, ReLabel" in loaders
    assert all(r["1"]["images_s"] > 0 for r in loaders.values())
    assert set(got["finish_cpu_ms_per_image"]) == {"legacy (whole batch)", "current (cache-sized)"}


def test_repeated_passes_report_the_best_and_the_median(tmp_path, monkeypatch):
    monkeypatch.setenv("RELABEL_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "loader.json"
    assert bench_loader.main(["--quick", "--repeat", "2", "--pipeline", "device", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["repeat"] == 2 and "best" in got["statistic"]
    for name, passes in got["in_process_passes_images_s"].items():
        assert len(passes) == 2 and got["in_process_images_s"][name] == max(passes)
        assert got["in_process_median_images_s"][name] <= max(passes)
    r = got["dataloader"]["ours device, ReLabel"]["1"]
    assert r["median_images_s"] <= r["images_s"] == r["per_worker"]


def test_images_are_textured_and_deterministic():
    a = bench_loader.textured_image(np.random.default_rng([0, 3]), 120, 90)
    b = bench_loader.textured_image(np.random.default_rng([0, 3]), 120, 90)
    px = np.asarray(a)
    assert np.array_equal(px, np.asarray(b)) and px.shape == (90, 120, 3)
    assert px.std() > 20 and np.abs(np.diff(px.astype(int), axis=1)).mean() > 3  # content, not flat colour


def test_interleaved_run_reports_paired_rates_and_ratios(tmp_path, monkeypatch):
    monkeypatch.setenv("RELABEL_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "loader.json"
    assert bench_loader.main(["--quick", "--interleave", "--pipeline", "device", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert "interleaved" in got["statistic"]
    inp, dl = got["paired"]["in_process"], got["paired"]["dataloader"]["1"]
    assert inp["pipelines"]["ours device, ReLabel"]["images_per_cpu_s"] > 0
    assert got["in_process_images_s"]["ours device, ReLabel"] == inp["pipelines"]["ours device, ReLabel"]["images_s"]
    ratio = inp["ratios"]["ours device, ReLabel / timm create_transform"]["ratio"]
    rates = {n: r["images_per_cpu_s"] for n, r in inp["pipelines"].items()}
    assert abs(ratio - rates["ours device, ReLabel"] / rates["timm create_transform"]) < 1e-9 * ratio
    assert dl["pipelines"]["ours device, ReLabel"]["workers_pids"] == 1  # one worker found and timed
    assert "ours device, ReLabel / timm create_loader (normalised in workers)" in dl["ratios"]


def test_paired_ratio_interval_covers_a_known_ratio():
    """Blocks whose costs differ by a known factor (1.5) under shared, heavy noise: the ratio and its interval."""
    rng = np.random.default_rng(0)
    spell = rng.lognormal(0, 0.4, 40)  # the machine's speed, shared by both pipelines in each block
    cost = {"ours x, y": list(spell * rng.lognormal(0, 0.05, 40)),
            "timm t": list(1.5 * spell * rng.lognormal(0, 0.05, 40))}
    r = paired.paired_ratios(list(cost), cost)["ours x, y / timm t"]
    lo, hi = r["ci95"]
    assert r["blocks"] == 40 and lo < r["ratio"] < hi and lo < 1.5 < hi and hi - lo < 0.1  # pairing: shared noise gone
    unpaired = np.exp(np.std(np.log(spell)) * 2 / np.sqrt(40))  # what the spells alone would put on an unpaired ratio
    assert hi / lo < unpaired


def test_resize_parity_reports_the_difference_and_the_costs(tmp_path, monkeypatch):
    from bench import resize_parity
    monkeypatch.setenv("RELABEL_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "parity.json"
    assert resize_parity.main(["--images", "8", "--crops", "8", "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["crops"] == 8 and 0 <= got["max_abs_diff"] <= 2  # float vs PIL's fixed point: rounding, no more
    assert 0 < got["mean_fraction_of_values_differing"] < 0.5
    assert 0 <= got["uint8_kernel"]["max_abs_diff"] <= 2
    assert set(got["cpu_ms_per_crop"]) == {"PIL crop + resize", "crop copy alone", "torch interpolate on this CPU",
                                           "resize_u8 (crop copy + uint8 kernel)"}
    assert all(v > 0 for v in got["cpu_ms_per_crop"].values())

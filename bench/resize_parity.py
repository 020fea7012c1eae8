"""How far torch's antialiased bilinear resize is from PIL's, on the loader benchmark's RandomResizedCrop crops.

    python -m bench.resize_parity                 # 300 crops; writes bench/measured/<date>_resize_parity.json

The training pipeline resized each RandomResizedCrop with PIL (torchvision's PIL path, bit for bit; it still does
for PIL images: the mini world's PNGs, cached datasets). Moving that resize to the GPU (the crop boxes still drawn in the loader, the crops shipped as 8-bit pixels) would take the
largest CPU cost after decode off the loader workers, but `torch.nn.functional.interpolate(..., antialias=True)`
does the arithmetic in float where PIL uses 22-bit fixed point. torch's uint8 kernel (`relabel.transforms.resize_u8`,
which the training loader uses on JPEG reads since issue 27) does it in Pillow-SIMD's fixed point. This measures
both against PIL (per pixel, after rounding to 8 bits) and the CPU cost of each step on the same crops, so the
decision rests on numbers.
"""
from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.bench_loader import DATA_VERSION, SIZE, build_images
from relabel.records import git_state, runs_root, write_json_atomic


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.resize_parity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--crops", type=int, default=300, help="crops to compare (default 300)")
    ap.add_argument("--images", type=int, default=3000,
                    help="the benchmark image set to draw from (default 3000: the one bench.bench_loader times)")
    ap.add_argument("--out", help="the JSON (default bench/measured/<date>_resize_parity.json)")
    a = ap.parse_args(argv)
    import torchvision.transforms as T

    from relabel.loader import load_rgb
    from relabel.transforms import _standin, resize_u8
    torch.set_num_threads(1)
    data = runs_root() / "bench" / f"loader-v{DATA_VERSION}-{a.images}"
    paths = build_images(data / "images", a.images)[: a.crops]
    g = torch.Generator().manual_seed(0)
    warm = torch.zeros(1, 3, 300, 260)  # untimed: interpolate's first call pays one-off set-up
    torch.nn.functional.interpolate(warm, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    resize_u8(np.zeros((300, 260, 3), np.uint8), (SIZE, SIZE))
    worst, differing, pil_ms, copy_ms, torch_ms = [], [], 0.0, 0.0, 0.0
    u8_worst, u8_differing, u8_ms = [], [], 0.0
    for p in paths:
        arr = np.asarray(load_rgb(data / "images" / p))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
            i, j, h, w = T.RandomResizedCrop.get_params(_standin(*arr.shape[:2]), (0.08, 1.0),
                                                        (3 / 4, 4 / 3))
        t = time.thread_time()
        ref = np.asarray(Image.fromarray(arr[i:i + h, j:j + w]).resize((SIZE, SIZE), Image.BILINEAR))
        pil_ms += time.thread_time() - t
        t = time.thread_time()
        crop = torch.from_numpy(np.array(arr[i:i + h, j:j + w]))  # the crop as the loader would ship it
        copy_ms += time.thread_time() - t
        t = time.thread_time()
        x = torch.nn.functional.interpolate(crop.permute(2, 0, 1)[None].float(), size=(SIZE, SIZE), mode="bilinear",
                                            antialias=True, align_corners=False)
        got = x.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        torch_ms += time.thread_time() - t
        d = np.abs(got.astype(np.int16) - ref.astype(np.int16))
        worst.append(int(d.max()))
        differing.append(float((d > 0).mean()))
        t = time.thread_time()
        got = resize_u8(arr[i:i + h, j:j + w], (SIZE, SIZE))  # crop copy included, as in the loader
        u8_ms += time.thread_time() - t
        d = np.abs(got.permute(1, 2, 0).numpy().astype(np.int16) - ref.astype(np.int16))
        u8_worst.append(int(d.max()))
        u8_differing.append(float((d > 0).mean()))
    n = len(paths)
    out = {
        "what": "torch interpolate(bilinear, antialias=True) rounded to 8 bits against PIL's BILINEAR resize, "
                f"RandomResizedCrop crops of the loader benchmark's JPEGs to {SIZE} px",
        "crops": n, "max_abs_diff": max(worst), "crops_with_max_diff_over_1": sum(v > 1 for v in worst),
        "mean_fraction_of_values_differing": float(np.mean(differing)),
        "uint8_kernel": {"what": "relabel.transforms.resize_u8 (torch's uint8 antialiased bilinear kernel, crop copy "
                                 "included) against PIL's BILINEAR resize", "max_abs_diff": max(u8_worst),
                         "crops_with_max_diff_over_1": sum(v > 1 for v in u8_worst),
                         "mean_fraction_of_values_differing": float(np.mean(u8_differing))},
        "cpu_ms_per_crop": {"PIL crop + resize": 1000 * pil_ms / n, "crop copy alone": 1000 * copy_ms / n,
                            "torch interpolate on this CPU": 1000 * torch_ms / n,
                            "resize_u8 (crop copy + uint8 kernel)": 1000 * u8_ms / n},  # thread CPU time
        "commit": git_state().get("sha"), "date": datetime.date.today().isoformat(), "torch": torch.__version__,
    }
    dest = Path(a.out or Path(__file__).parent / "measured" / f"{out['date']}_resize_parity.json")
    write_json_atomic(dest, out)
    u8 = out["uint8_kernel"]
    print(f"max |torch float - PIL| {out['max_abs_diff']} level(s), {100 * out['mean_fraction_of_values_differing']:.1f}% "
          f"of values differ; max |resize_u8 - PIL| {u8['max_abs_diff']}, "
          f"{100 * u8['mean_fraction_of_values_differing']:.1f}% differ; ms per crop on this CPU: " +
          ", ".join(f"{k} {v:.3f}" for k, v in out["cpu_ms_per_crop"].items()) + f"; wrote {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""load_rgb's fast JPEG path (simplejpeg, issue 27) gives the pixels PIL gives, and leaves everything else to PIL.

Every training image, annotation input and evaluation image goes through relabel.loader.load_rgb, so a decoder
that changed one pixel would change what a model sees; the fast path is taken only for the colour spaces where it is
bit-identical to PIL (checked here over chroma subsampling, baseline/progressive and grayscale), and a damaged
file still gets PIL's verdict and the BadImageError that names it.
"""
from __future__ import annotations

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from relabel import loader
from relabel.loader import BadImageError, load_rgb


def _texture(h=97, w=131, seed=0) -> np.ndarray:
    """Textured content with hard edges (flat colour would hide rounding differences)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(x / 5.0 + c) * np.cos(y / 7.0 - c) for c in range(3)], -1) * 90 + 128
    base[(x // 17 + y // 13) % 2 == 0] += 40
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


def _pil(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the images the fast path decoded."""
    calls = []
    real = simplejpeg.decode_jpeg

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(loader.simplejpeg, "decode_jpeg", counted)
    return calls


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("subsampling", [0, 1, 2])  # PIL's 4:4:4, 4:2:2, 4:2:0
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_fast_path_is_bit_identical_to_pil(tmp_path, fast_calls, mode, subsampling, progressive):
    im = Image.fromarray(_texture())
    im = im.convert(mode)
    p = tmp_path / "x.JPEG"
    im.save(p, "JPEG", quality=87, subsampling=subsampling, progressive=progressive)
    out = load_rgb(p)
    assert fast_calls == [1]
    assert out.mode == "RGB" and out.size == im.size
    assert np.array_equal(np.asarray(out), _pil(p))


def test_cmyk_and_png_go_through_pil(tmp_path, fast_calls):
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(_texture()).convert("CMYK").save(cmyk, "JPEG", quality=90)
    png = tmp_path / "x.png"
    Image.fromarray(_texture(seed=1)).save(png)
    for p in (cmyk, png):
        assert np.array_equal(np.asarray(load_rgb(p)), _pil(p))
    assert fast_calls == []


def test_a_jpeg_named_png_is_still_read(tmp_path, fast_calls):
    p = tmp_path / "really_a_jpeg.png"
    Image.fromarray(_texture()).save(p, "JPEG", quality=90)
    assert np.array_equal(np.asarray(load_rgb(p)), _pil(p))
    assert fast_calls == [1]


def test_truncated_jpeg_is_a_bad_image_naming_the_file(tmp_path):
    p = tmp_path / "cut.JPEG"
    Image.fromarray(_texture()).save(p, "JPEG", quality=90)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError) as e:
        load_rgb(p, index=7)
    assert "cut.JPEG" in str(e.value) and "truncated" in str(e.value)


def test_files_larger_than_the_read_buffer_and_one_after_another(tmp_path, fast_calls):
    big = tmp_path / "big.jpg"  # noise at quality 98: several MB, past the 1 MB buffer it starts with
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (1400, 1300, 3), dtype=np.uint8)).save(big, quality=98)
    small = tmp_path / "small.jpg"
    Image.fromarray(_texture(seed=2)).save(small, quality=90)
    assert big.stat().st_size > (1 << 20)
    for p in (small, big, small, big):  # the buffer grows and is reused; every image is its own file's pixels
        assert np.array_equal(np.asarray(load_rgb(p)), _pil(p))
    assert len(fast_calls) == 4


def test_an_image_past_pils_pixel_limit_is_still_a_decompression_bomb(tmp_path, fast_calls, monkeypatch):
    p = tmp_path / "bomb.JPEG"
    Image.fromarray(_texture()).save(p, "JPEG", quality=90)  # 97 × 131 = 12,707 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # PIL refuses past twice its limit
    with pytest.raises(BadImageError) as e:
        load_rgb(p)
    assert "bomb.JPEG" in str(e.value) and fast_calls == []


def test_transient_reads_are_arrays_in_a_reused_buffer_with_the_same_pixels(tmp_path, fast_calls):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    Image.fromarray(_texture(seed=4)).save(a, quality=90)
    Image.fromarray(_texture(seed=5)).convert("L").save(b, quality=90)
    png = tmp_path / "c.png"
    Image.fromarray(_texture(seed=6)).save(png)
    x = load_rgb(a, transient=True)
    assert isinstance(x, np.ndarray) and x.shape == (97, 131, 3) and not x.flags.writeable
    assert np.array_equal(x, _pil(a))
    y = load_rgb(b, transient=True)  # grayscale, decoded to RGB into the same buffer
    assert np.array_equal(y, _pil(b)) and np.shares_memory(x, y)
    assert isinstance(load_rgb(png, transient=True), Image.Image)  # everything else stays a PIL image


@pytest.mark.parametrize("hflip", [0.0, 0.5])
def test_the_training_transform_gives_the_same_sample_from_an_array_or_a_pil_image(tmp_path, hflip):
    """TrainSet's transient reads change no box or draw, and pixels only by resize_u8's rounding: an item is the
    one from the cached PIL image, its 8-bit pixels within 2 levels (the per-image pipeline's jitter, which can
    stretch a difference by up to 1.4 per op, within 6 after normalising)."""
    import torch

    from relabel.loader import IMAGENET_STD, Sample, TrainSet, train_transform
    from relabel.transforms import Pending
    names = []
    for k, (h, w) in enumerate([(97, 131), (240, 180), (64, 300), (333, 257)]):
        names.append(f"{k}.JPEG")
        Image.fromarray(_texture(h, w, seed=k)).save(tmp_path / names[-1], quality=88)
    samples = [Sample(n, 0) for n in names]
    levels = torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255
    from relabel.loader import load_rgb
    from relabel.transforms import RandomResizedCropWithBox
    arr = load_rgb(tmp_path / names[0], transient=True)
    assert isinstance(arr, np.ndarray) and isinstance(RandomResizedCropWithBox(8)(arr)[0], torch.Tensor)  # resize_u8
    for tr in (train_transform(56, (0.08, 1.0), 0.4, hflip), train_transform(56, (0.08, 1.0), 0.4, hflip, False)):
        lazy, cached = (TrainSet(tmp_path, samples, tr, seed=9, cache=c) for c in (False, True))
        for epoch in range(3):
            lazy.set_epoch(epoch), cached.set_epoch(epoch)
            for i in range(len(names)):
                a, b = lazy[i], cached[i]
                assert torch.equal(a[1], b[1]) and a[2] == b[2]
                if isinstance(a[0], Pending):
                    assert torch.equal(a[0].order, b[0].order) and torch.equal(a[0].factors, b[0].factors)
                    d = (a[0].pixels.int() - b[0].pixels.int()).abs()
                    assert a[0].pixels.dtype == torch.uint8 and d.max() <= 2 and (d > 0).float().mean() < 0.2
                else:
                    assert ((a[0] - b[0]).abs() * levels).max() < 6 + 1e-3


def test_resize_u8_is_within_two_levels_of_pils_resize():
    """torch's uint8 antialiased bilinear kernel against PIL's BILINEAR resize (torchvision's PIL path), down and
    up, on textures and on noise (the hardest case for rounding): never more than 2 levels apart."""
    import torch

    from relabel.transforms import resize_u8
    rng = np.random.default_rng(3)
    for k in range(40):
        h, w = (int(v) for v in rng.integers(8, 400, 2))
        img = _texture(h, w, seed=k) if k % 2 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        size = [int(v) for v in rng.integers(8, 300, 2)]
        crop = img[1:-1, 2:-1]  # a strided view, as a crop of the transient array is
        want = np.asarray(Image.fromarray(crop).resize(size[::-1], Image.BILINEAR))
        got = resize_u8(crop, size)
        assert got.dtype == torch.uint8 and got.shape == (3, *size) and got.is_contiguous()
        assert np.abs(got.permute(1, 2, 0).numpy().astype(int) - want).max() <= 2

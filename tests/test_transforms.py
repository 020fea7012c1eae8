"""Crop transforms: the box names the pixels the crop shows (x along width), flips and composition."""
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate
from torchvision import transforms as T

from relabel.transforms import (ComposeWithBox, CropBox, RandomHorizontalFlipWithBox, RandomResizedCropWithBox,
                                compose_crop)

H, W = 60, 80


def coordinate_image():
    """Channel 0 = column index, channel 1 = row index: a crop's pixels say where they came from."""
    cols = torch.arange(W, dtype=torch.float32)[None, :].expand(H, W)
    rows = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    return torch.stack([cols, rows, torch.zeros(H, W)])


def shown_extent(crop):
    """Original pixel-edge extent (x1, y1, x2, y2) covered by a nearest-neighbour crop, normalised."""
    return (crop[0].min().item() / W, crop[1].min().item() / H,
            (crop[0].max().item() + 1) / W, (crop[1].max().item() + 1) / H)


def nearest_crop(size=(64, 64), scale=(0.02, 0.06)):
    # upsampling (regions are < 20 px) with nearest resampling: every pixel of the region is shown
    return RandomResizedCropWithBox(size, scale=scale, interpolation=T.InterpolationMode.NEAREST)


def test_box_is_the_region_the_crop_shows():
    torch.manual_seed(0)
    t = nearest_crop()
    for _ in range(20):
        crop, state = t(coordinate_image())
        assert not state.flipped
        assert shown_extent(crop) == pytest.approx((state.x1, state.y1, state.x2, state.y2), abs=1e-6)
        assert 0.0 <= state.x1 < state.x2 <= 1.0 and 0.0 <= state.y1 < state.y2 <= 1.0


def test_same_random_draws_as_torchvision():
    img = Image.new("RGB", (W, H))
    img.putdata([(x % 256, y % 256, (x * y) % 256) for y in range(H) for x in range(W)])
    torch.manual_seed(3)
    ours, _ = RandomResizedCropWithBox(32, antialias=True)(img)
    torch.manual_seed(3)
    theirs = T.RandomResizedCrop(32, antialias=True)(img)
    assert torch.equal(T.functional.pil_to_tensor(ours), T.functional.pil_to_tensor(theirs))


def test_flip_after_crop_keeps_box_and_sets_flag():
    torch.manual_seed(1)
    crop, state = nearest_crop()(coordinate_image())
    flipped, state2 = RandomHorizontalFlipWithBox(p=1.0)(crop, state)
    assert state2.flipped and (state2.x1, state2.y1, state2.x2, state2.y2) == (state.x1, state.y1, state.x2, state.y2)
    assert torch.equal(flipped, crop.flip(-1))


def test_flip_before_crop_is_folded_into_the_box():
    torch.manual_seed(2)
    img, state = RandomHorizontalFlipWithBox(p=1.0)(coordinate_image())
    for _ in range(10):
        crop, s = nearest_crop()(img, state)
        assert s.flipped
        assert shown_extent(crop) == pytest.approx((s.x1, s.y1, s.x2, s.y2), abs=1e-6)
        # the crop's left column shows the rightmost original column of the box
        assert crop[0, :, 0].max().item() == pytest.approx(s.x2 * W - 1, abs=1e-6)


def test_compose_crop_arithmetic():
    assert compose_crop(CropBox(0.2, 0.0, 0.6, 0.5), (0.5, 0.0, 1.0, 1.0)) == CropBox(0.4, 0.0, 0.6, 0.5)
    # in a mirrored view the left quarter of the view is the right quarter of the box
    m = compose_crop(CropBox(0.2, 0.0, 0.6, 0.5, True), (0.0, 0.5, 0.25, 1.0))
    assert m.flipped and (m.x1, m.y1, m.x2, m.y2) == pytest.approx((0.5, 0.25, 0.6, 0.5))


def test_compose_with_box_in_a_dataloader_batch():
    pipeline = ComposeWithBox([RandomResizedCropWithBox(16, antialias=True), RandomHorizontalFlipWithBox(),
                               T.ColorJitter(0.4, 0.4, 0.4), T.Normalize([0.5] * 3, [0.5] * 3)])
    torch.manual_seed(0)
    batch = default_collate([pipeline(torch.rand(3, H, W)) for _ in range(8)])
    images, boxes, flips = batch
    assert images.shape == (8, 3, 16, 16) and boxes.shape == (8, 4) and boxes.dtype == torch.float32
    assert flips.dtype == torch.bool and flips.shape == (8,)
    assert bool(((boxes[:, 2:] > boxes[:, :2]) & (boxes >= 0).all(1, keepdim=True)).all())


def test_no_crop_means_the_whole_image():
    _, box, flipped = ComposeWithBox([T.Resize(32)])(torch.rand(3, H, W))
    assert box.tolist() == [0.0, 0.0, 1.0, 1.0] and flipped is False


@pytest.mark.parametrize("bad", [T.RandomCrop(8), T.CenterCrop(8), T.RandomHorizontalFlip(), T.RandomResizedCrop(8)])
def test_box_breaking_transforms_are_refused(bad):
    with pytest.raises(TypeError, match="without updating the crop box"):
        ComposeWithBox([bad])


@pytest.mark.parametrize("jitter", [0.4, 0.2, 0.0])
def test_batched_colour_jitter_equals_torchvisions_per_image_pipeline(jitter):
    """The batched jitter + normalisation gives torchvision's per-image ColorJitter → ToTensor → Normalize (PIL
    path) exactly, and leaves the random stream where the per-image pipeline leaves it."""
    import numpy as np
    from relabel.loader import IMAGENET_MEAN as M, IMAGENET_STD as S, train_transform
    from relabel.transforms import BatchedColorJitterNormalize, Pending
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)) for _ in range(48)]
    imgs += [Image.fromarray(np.full((40, 52, 3), v, dtype=np.uint8)) for v in (0, 128, 255)]  # flat extremes
    ref = T.Compose(([T.ColorJitter(jitter, jitter, jitter)] if jitter else []) + [T.ToTensor(), T.Normalize(M, S)])
    ours = BatchedColorJitterNormalize(jitter, jitter, jitter, M, S)
    want, pending, after_ref, after_ours = [], [], [], []
    for i, im in enumerate(imgs):
        torch.manual_seed(i)
        want.append(ref(im))
        after_ref.append(torch.rand(1))
        torch.manual_seed(i)
        pending.append(ours(im))
        after_ours.append(torch.rand(1))
    batch = default_collate(pending)
    assert isinstance(batch, Pending) and batch.pixels.dtype == torch.uint8 and batch.pixels.shape == (51, 3, 40, 52)
    got = ours.finish(batch)
    levels = (got - torch.stack(want)).abs() * torch.tensor(S).view(1, 3, 1, 1) * 255
    assert levels.max() < 1e-3  # the same 8-bit values: only the float normalisation may differ in rounding
    assert torch.equal(torch.stack(after_ref), torch.stack(after_ours))
    # through the training transform and its collate: the same batch as the per-image pipeline
    a, b = train_transform(32, color_jitter=jitter), train_transform(32, color_jitter=jitter, batched=False)
    items = []
    for t in (a, b):
        torch.manual_seed(7)
        items.append([t(im) for im in imgs[:8]])
    xa, boxes_a, _ = default_collate(items[0])
    xb, boxes_b, _ = default_collate(items[1])
    xa = a.finish_batch(xa)
    assert torch.equal(boxes_a, boxes_b) and (xa - xb).abs().max() < 1e-5



@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 30])
def test_finish_on_the_8bit_path_matches_the_per_image_pipeline(device, chunk_bytes, monkeypatch):
    """The 8-bit collate (channels-last uint8 + jitter draws, collate_train(finish=False)) finished where the
    trainer's finish_on puts it — on the training device after the copy, or on the CPU a few images at a time —
    gives the per-image pipeline within the tolerance above, and on the CPU exactly the batch-wide finish."""
    import numpy as np
    from relabel.loader import collate_train, train_transform
    from relabel.transforms import BatchedColorJitterNormalize, Pending
    monkeypatch.setattr(BatchedColorJitterNormalize, "CPU_CHUNK_BYTES", chunk_bytes)  # 1: image by image
    rng = np.random.default_rng(1)
    imgs = [Image.fromarray(rng.integers(0, 256, (40 + i, 52, 3), dtype=np.uint8)) for i in range(12)]
    imgs.append(Image.fromarray(np.full((40, 52, 3), 255, dtype=np.uint8)))
    a, b = train_transform(32, color_jitter=0.4, hflip=0.5), train_transform(32, color_jitter=0.4, hflip=0.5,
                                                                               batched=False)
    items = []
    for t in (a, b):
        torch.manual_seed(3)
        items.append([(*t(im), i, -1) for i, im in enumerate(imgs)])
    pending, boxes_a, *_ = collate_train(items[0], a, finish=False)
    assert isinstance(pending, Pending) and pending.pixels.dtype == torch.uint8
    assert pending.pixels.is_contiguous(memory_format=torch.channels_last)
    moved = pending._replace(pixels=pending.pixels.to(device))
    got = a.finish_batch(moved)
    assert got.device.type == device and got.dtype == torch.float32
    xb, boxes_b, *_ = collate_train(items[1], b)
    assert torch.equal(boxes_a, boxes_b) and (got.cpu() - xb).abs().max() < 1e-5
    monkeypatch.setattr(BatchedColorJitterNormalize, "CPU_CHUNK_BYTES", 1 << 30)
    batch_wide = a.finish_batch(Pending(pending.pixels.contiguous(), pending.order, pending.factors))
    if device == "cpu":
        assert torch.equal(got, batch_wide)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_collate_pending_stacks_planar_and_pil_pixels_as_they_lie(device):
    """resize_u8's planar [3, H, W] pixels collate to a contiguous NCHW batch, PIL's [H, W, 3] views to a
    channels-last one (no transposing copy either way); the values, the draws and `finish`'s output are the same."""
    from relabel.transforms import BatchedColorJitterNormalize, Pending, collate_pending
    g = torch.Generator().manual_seed(0)
    planar = [torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8, generator=g) for _ in range(5)]
    views = [p.permute(1, 2, 0).contiguous().permute(2, 0, 1) for p in planar]  # what pil_to_tensor gives
    draws = [(torch.randperm(4, generator=g), 0.6 + 0.8 * torch.rand(3, generator=g)) for _ in planar]
    a = collate_pending([Pending(p, o, f) for p, (o, f) in zip(planar, draws)])
    b = collate_pending([Pending(p, o, f) for p, (o, f) in zip(views, draws)])
    assert a.pixels.is_contiguous() and b.pixels.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a.pixels, b.pixels) and torch.equal(a.order, b.order) and torch.equal(a.factors, b.factors)
    jit = BatchedColorJitterNormalize(0.4, 0.4, 0.4)
    assert torch.equal(jit.finish(a), jit.finish(b))
    if device != "cpu":  # on the training device, planar or channels-last: the CPU's values within the stated
        for p in (a, b):  # tolerance (≤ 1 level, in rare values: the GPU's float rounding at a truncation)
            got = jit.finish(p._replace(pixels=p.pixels.to(device))).cpu()
            levels = (got - jit.finish(a)).abs() * torch.tensor(jit.std).view(1, 3, 1, 1) * 255
            assert levels.max() < 1 + 1e-3 and (levels > 1e-3).float().mean() < 0.01

"""LabelMapStore: dtype round trips, size per image, out-of-order/resumed writes, mismatch errors, official format."""
import math
import pickle

import numpy as np
import pytest
import torch

from relabel.official_maps import export_official, import_official, official_name
from relabel.store import LabelMapStore, LabelStoreError, LabelStoreMismatch, _SetCodec, class_list_hash

K, GRID, C = 5, (15, 15), 1000


def imagenet_like_paths(n, classes=4):
    return [f"n0{c:07d}/n0{c:07d}_{i}.JPEG" for c in range(classes) for i in range(n // classes)]


def random_maps(n, k=K, grid=GRID, num_classes=C, seed=0):
    """Best-first top-k maps with distinct classes per location and distinct scores."""
    rng = np.random.default_rng(seed)
    scores = -np.sort(-rng.normal(3.0, 2.0, size=(n, k, *grid)), axis=1).astype(np.float32)
    idx = np.argsort(rng.random((n, *grid, num_classes)), axis=-1)[..., :k].transpose(0, 3, 1, 2)
    return scores, idx


def dense(scores, idx, num_classes=C):
    d = np.zeros((len(scores), num_classes, *scores.shape[2:]), np.float32)
    np.put_along_axis(d, np.asarray(idx), np.asarray(scores), axis=1)
    return d


def build(tmp_path, dtype, paths, scores, idx, **kw):
    w = LabelMapStore.create(tmp_path / dtype, paths, num_classes=kw.pop("num_classes", C), k=scores.shape[1],
                             grid=scores.shape[2:], score_dtype=dtype, annotator="test", input_size=64, **kw)
    w.write(w.rows(paths), scores, idx)
    return w.finalize()


# ---------------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_dtype_round_trip(tmp_path, dtype):
    paths = imagenet_like_paths(40)
    scores, idx = random_maps(40)
    store = build(tmp_path, dtype, paths, scores, idx)
    s, i = store.read_batch(store.rows(paths))
    assert s.dtype == torch.float32 and i.dtype == torch.int64 and s.shape == (40, K, *GRID)
    # same class set at every location, scores within the dtype's bound
    assert np.array_equal(np.sort(i.numpy(), 1), np.sort(idx, 1))
    err = np.abs(dense(s.numpy(), i.numpy()) - dense(scores, idx)).max(axis=(1, 2, 3))
    rng_ = scores.max(axis=(1, 2, 3)) - scores.min(axis=(1, 2, 3))
    bound = {"float32": 0.0 * rng_, "float16": 1e-3 * np.abs(scores).max(axis=(1, 2, 3)),
             "uint8": rng_ / 255 / 2 + 1e-5}[dtype]
    assert (err <= bound).all()
    if dtype == "uint8":
        assert err.max() > 0  # it is lossy, and the bound above is what it costs
    rs, ri = store.read(paths[7])  # best-first order restored (exactly where stored scores do not tie)
    assert (rs[:-1] >= rs[1:]).all() and np.array_equal(np.sort(ri, 0), np.sort(idx[7], 0))
    if dtype == "float32":
        assert np.array_equal(ri, idx[7]) and np.array_equal(rs, scores[7])


def test_bytes_per_image_at_imagenet_settings(tmp_path):
    paths = imagenet_like_paths(200)
    scores, idx = random_maps(200)
    sizes = {}
    for dtype in ["float32", "float16", "uint8"]:
        sizes[dtype] = build(tmp_path, dtype, paths, scores, idx).bytes_per_image()
    assert sizes["float32"]["payload"] == 225 * 5 * 4 + 1210            # 43-bit class-set codes, bit-packed
    assert sizes["float16"]["payload"] == 225 * 5 * 2 + 1210
    assert sizes["uint8"]["payload"] == 225 * 5 + 1210 + 8 == 2343       # official fp32 .pt: 9000 B
    assert sizes["uint8"]["on_disk"] <= 2500


def test_plain_coding_when_the_set_code_does_not_fit(tmp_path):
    paths = imagenet_like_paths(8)
    scores, idx = random_maps(8, k=10, grid=(3, 3))
    store = build(tmp_path, "float32", paths, scores, idx)
    assert store.meta.index_coding == "plain"
    assert np.array_equal(store.read(3)[1], idx[3])


@pytest.mark.parametrize("num_classes, k", [(1000, 5), (1000, 1), (1000, 6), (100, 8), (21843, 3)])
def test_set_codec_is_exact_at_every_step_boundary(num_classes, k):
    # For every possible largest class c: the smallest and the largest code with that top class.
    cs = np.arange(k - 1, num_classes)
    lo = np.stack([np.concatenate([np.arange(k - 1), [c]]) for c in cs])
    hi = np.stack([np.arange(c - k + 1, c + 1) for c in cs])
    rng = np.random.default_rng(0)
    rnd = np.sort(np.argsort(rng.random((500, num_classes)), 1)[:, :k], 1)
    sets = np.concatenate([lo, hi, rnd])                       # [L, k]
    codec = _SetCodec(num_classes, k, len(sets))
    assert codec.bits == (math.comb(num_classes, k) - 1).bit_length()
    idx = sets.T[None]                                         # one 'image' with L locations
    assert np.array_equal(codec.decode(codec.encode(idx)), idx)


# ---------------------------------------------------------------------------------------------- writing
def test_out_of_order_and_resumed_writes_equal_one_pass(tmp_path):
    paths = imagenet_like_paths(60)
    scores, idx = random_maps(60)
    one = build(tmp_path, "uint8", paths, scores, idx)
    rows = one.rows(paths)
    perm = np.random.default_rng(1).permutation(60)
    w = LabelMapStore.create(tmp_path / "resumed", paths, num_classes=C, k=K, annotator="test", input_size=64)
    w.write(rows[perm[:25]], scores[perm[:25]], idx[perm[:25]])
    del w  # "killed"
    w = LabelMapStore.create(tmp_path / "resumed", paths, num_classes=C, k=K, annotator="test", input_size=64)
    assert sorted(w.missing()) == sorted(rows[perm[25:]])
    with pytest.raises(LabelStoreError, match="35 of 60 maps are not written"):
        w.finalize()
    with pytest.raises(LabelStoreError, match="incomplete"):
        LabelMapStore.open(tmp_path / "resumed")
    w.write(rows[perm[25:]], torch.from_numpy(scores[perm[25:]]), torch.from_numpy(idx[perm[25:]]))
    resumed = w.finalize()
    for name in ["scores.npy", "quant.npy", "indices.npy", "paths.txt"]:
        assert (tmp_path / "uint8" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name


def test_write_refuses_bad_input(tmp_path):
    paths = imagenet_like_paths(4)
    w = LabelMapStore.create(tmp_path / "s", paths, num_classes=C, k=2, grid=(2, 2))
    s, i = np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 2, 2), np.int64)
    with pytest.raises(LabelStoreError, match="same class twice"):
        w.write([0], s, i)
    i[:, 1] = 1
    with pytest.raises(LabelStoreError, match=r"\(rows, k, h, w\)"):
        w.write([0, 1], s, i)
    with pytest.raises(LabelStoreError, match="class index out of range"):
        w.write([0], s, i + C)
    with pytest.raises(LabelStoreError, match="NaN"):
        w.write([0], s * np.nan, i)
    with pytest.raises(LabelStoreError, match="other settings \\(k\\)"):
        LabelMapStore.create(tmp_path / "s", paths, num_classes=C, k=3, grid=(2, 2))


def test_store_survives_pickling_into_workers(tmp_path):
    paths = imagenet_like_paths(8)
    scores, idx = random_maps(8, grid=(4, 4))
    store = build(tmp_path, "float16", paths, scores, idx)
    store.read(0)  # memory maps open
    clone = pickle.loads(pickle.dumps(store))
    assert len(pickle.dumps(store)) < 10_000  # no map data travels
    assert torch.equal(clone.read_batch([1, 2])[0], store.read_batch([1, 2])[0])


# ---------------------------------------------------------------------------------------------- mismatch
def test_dataset_mismatch_is_one_clear_sentence(tmp_path):
    paths = imagenet_like_paths(12)
    scores, idx = random_maps(12, grid=(2, 2))
    build(tmp_path, "uint8", paths, scores, idx)
    LabelMapStore.open(tmp_path / "uint8", dataset_paths=list(reversed(paths)))  # order does not matter
    with pytest.raises(LabelStoreMismatch) as e:
        LabelMapStore.open(tmp_path / "uint8", dataset_paths=paths[:5] + paths[6:])
    msg = str(e.value)
    assert "(12 images)" in msg and "(11 images)" in msg and repr(paths[5]) in msg and "rebuild the store" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")
    with pytest.raises(LabelStoreMismatch, match="'zzz/extra.JPEG' is only in the dataset"):
        LabelMapStore.open(tmp_path / "uint8", dataset_paths=paths + ["zzz/extra.JPEG"])
    with pytest.raises(LabelStoreMismatch, match="different class list"):
        build(tmp_path, "float16", paths, scores, idx, class_names=[str(c) for c in range(C)])
        LabelMapStore.open(tmp_path / "float16", class_names=[str(c) for c in reversed(range(C))])
    with pytest.raises(LabelStoreError, match="does not exist"):
        LabelMapStore.open(tmp_path / "nowhere")


def test_changed_file_sizes_are_a_mismatch(tmp_path):
    paths = imagenet_like_paths(8)
    scores, idx = random_maps(8, grid=(2, 2))
    sizes = list(range(100, 108))
    build(tmp_path, "uint8", paths, scores, idx, sizes=sizes)
    LabelMapStore.open(tmp_path / "uint8", dataset_paths=paths, dataset_sizes=sizes)
    sizes[3] += 1
    with pytest.raises(LabelStoreMismatch, match=f"{paths[3]!r} is 104 bytes now but was 103 bytes"):
        LabelMapStore.open(tmp_path / "uint8", dataset_paths=paths, dataset_sizes=sizes)


def test_meta_records_provenance(tmp_path):
    paths = imagenet_like_paths(4)
    scores, idx = random_maps(4, grid=(2, 2))
    names = [f"n{i:08d}" for i in range(C)]
    m = build(tmp_path, "uint8", paths, scores, idx, class_names=names).meta
    assert (m.annotator, m.input_size, m.grid, m.k, m.score_dtype, m.num_classes) == ("test", 64, (2, 2), 5, "uint8", C)
    assert m.class_hash == class_list_hash(names) and len(m.fingerprint) == 64 and m.complete


# ---------------------------------------------------------------------------------------------- official
def official_tree(root, paths, scores, idx):
    for p, s, i in zip(paths, scores, idx):
        f = root / official_name(p)
        f.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.from_numpy(np.stack([s, i.astype(np.float32)])), f)


def test_official_import_export_round_trip(tmp_path):
    paths = imagenet_like_paths(9, classes=3)
    scores, idx = random_maps(9)
    official_tree(tmp_path / "release", paths, scores, idx)
    store = import_official(tmp_path / "release", tmp_path / "store", score_dtype="float32", progress=False)
    assert store.paths == sorted(paths) and store.meta.annotator == "tf_efficientnet_l2_ns_475"
    assert export_official(store, tmp_path / "back", progress=False) == 9
    for p in paths:
        a = torch.load(tmp_path / "release" / official_name(p), weights_only=True)
        b = torch.load(tmp_path / "back" / official_name(p), weights_only=True)
        assert b.shape == (2, 5, 15, 15) and b.dtype == torch.float32 and torch.equal(a, b), p
    q = import_official(tmp_path / "release", tmp_path / "store8", image_paths=paths, score_dtype="uint8",
                        progress=False)
    s8, i8 = q.read(paths[4], rank_order=False)
    assert np.abs(dense(s8[None], i8[None]) - dense(scores[4:5], idx[4:5])).max() <= np.ptp(scores[4]) / 510 + 1e-5
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_official(store, tmp_path / "back", progress=False)


def test_official_import_names_the_missing_file(tmp_path):
    paths = imagenet_like_paths(4, classes=2)
    scores, idx = random_maps(4, grid=(3, 3))
    official_tree(tmp_path / "release", paths[:3], scores[:3], idx[:3])
    with pytest.raises(FileNotFoundError, match=official_name(paths[3])):
        import_official(tmp_path / "release", tmp_path / "store", image_paths=paths, progress=False)
    assert official_name("train/n01440764/n01440764_10026.JPEG") == "n01440764/n01440764_10026.pt"

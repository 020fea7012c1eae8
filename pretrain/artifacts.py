"""Shared pretraining artifacts per scale: the data, the machine annotator, label-map stores, the cleaned list.

Each is built once under `runs/<scale>/` behind a file lock and reused by every row and seed. Mini: the world is
generated, the annotator published (pretrain/published/) or trained on its train and extra splits, and the train
split annotated. Full: ImageNet from IMAGENET_ROOT, and either the official released maps (RELABEL_OFFICIAL_MAPS,
imported) or an annotator checkpoint (RELABEL_ANNOTATOR_CKPT, run over the train set). Variants (fp16, 8-bit,
top-k) are derived from one base store. Annotators other than the default (Fig. 4's ladder, Fig. 6's KD
teachers) live under `annotator/<name>/` with stores named after them; Table 5's extra data is the extra split
re-labelled by the annotator and class-balanced.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from pretrain import oracle
from pretrain.config import ANNOTATORS, annotator_config
from relabel import dist, launch, stamped
from relabel import evaluators as E
from relabel.annotate import annotate
from relabel.checkpoint import CheckpointError, load_model, read_meta, save_model
from relabel.costs import model_stats
from relabel.data import ensure_world, world_test_sets
from relabel.data.readers import class_folders, list_class_folders, read_voc_boxes
from relabel.loader import Sample, TrainSet
from relabel.official_maps import import_official
from relabel.records import config_hash, file_sha256, write_json_atomic
from relabel.store import LabelMapStore, dataset_fingerprint, file_sizes
from relabel.train import set_aside_earlier_recipe, train, train_transform_for


@functools.lru_cache(maxsize=None)
def _mini_world(data_root: str) -> Path:
    """The default mini world under data_root, built on first use; checked once per process (one log line)."""
    return ensure_world(data_root, seed=0, log=lambda m: print(m, flush=True))


def world_dir(cfg) -> Path:
    if cfg.scale == "mini":
        return _mini_world(str(cfg.data_root))
    root = Path(cfg.data_root)
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"ImageNet root {root} has no train/ folder; set IMAGENET_ROOT to a folder with "
                                "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG")
    return root


def dataset_name(cfg) -> str:
    return world_dir(cfg).name if cfg.scale == "mini" else "imagenet-1k"


def test_sets(cfg) -> dict:
    """What an evaluation record adds to its config: the identity of the test sets it read (mini: the world's,
    relabel.data.world_test_sets; full: nothing, the real datasets are not versioned), so a record evaluated on
    earlier test sets is stale (relabel.launch.on_current_test_sets)."""
    return {"test_sets": world_test_sets(world_dir(cfg))} if cfg.scale == "mini" else {}


def _samples(root: Path, classes=None) -> list[Sample]:
    """Label = index of the folder's wnid/class in `classes` (#14 item 3); None: sorted folder names (labels unused)."""
    _, items = list_class_folders(root, classes, "training image")
    return [Sample(p.relative_to(root).as_posix(), k) for p, k in items]


def train_samples(cfg) -> tuple[Path, list[Sample]]:
    root = world_dir(cfg) / "train"
    return root, _samples(root, data_roots(cfg).classes)  # the val reader's class list: ImageNet's sorted wnids


def _artifacts(cfg) -> Path:
    return launch.runs_root() / cfg.scale


# The published mini annotator (issue 15): the default annotator's weights, trained once by `make annotator`
# (`python -m pretrain.publish_annotator`) and committed with a JSON of its recipe hash, sha256 and accuracy, as the
# paper's annotator is a downloaded model. Every mini run takes this file when its recipe is the code's; otherwise
# (or with RELABEL_PUBLISHED_ANNOTATOR=0) the annotator is trained here. tests/test_published_annotator.py fails when
# the code's recipe and the published file disagree.
PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
PUBLISHED_ENV = "RELABEL_PUBLISHED_ANNOTATOR"


def published_paths(scale: str, name: str = "default") -> tuple[Path, Path]:
    """(weights, JSON) of the published annotator `name` at `scale`."""
    return PUBLISHED_DIR / f"annotator-{scale}-{name}.safetensors", PUBLISHED_DIR / f"annotator-{scale}-{name}.json"


def published_annotator(cfg, name: str = "default") -> dict | None:
    """The published annotator's JSON (with 'path') when it exists, is enabled and was trained under the code's
    recipe for `name`; else None (the annotator is then trained here)."""
    a = annotator_config(cfg, name)
    if a.train is None or os.environ.get(PUBLISHED_ENV, "1") == "0":
        return None
    weights, meta = published_paths(cfg.scale, name)
    if not (weights.is_file() and meta.is_file()):
        return None
    info = json.loads(meta.read_text())
    if info.get("recipe_hash") != config_hash(a.recipe()) or info.get("world") != mini_world_name():
        _warn_once(f"note: {weights.name} was trained under another annotator recipe or world than the code's; "
                   "training the annotator here instead (`make annotator` publishes a new one)")
        return None
    if file_sha256(weights) != info.get("sha256"):  # checked on every rank, before any build starts
        raise CheckpointError(f"{weights} does not match the sha256 in {meta.name}; restore both with git "
                              "(`git checkout -- pretrain/published`) or publish anew with `make annotator`")
    return {**info, "path": str(weights)}


def mini_world_name() -> str:
    """The default mini world's folder name (generator version, seed and knobs), without building it."""
    from relabel.data.world import world_name
    from relabel.data.world_config import make_config
    return world_name(0, make_config())


@functools.lru_cache(maxsize=None)
def _warn_once(msg: str) -> None:
    print(msg, flush=True)


def annotator_checkpoint(cfg, name: str = "default") -> Path:
    """The annotator's safetensors: the published file (mini, copied into its workdir), trained here on the extra
    split (mini) or the configured file (full)."""
    a = annotator_config(cfg, name)
    if a.train is None:
        if not a.checkpoint:
            raise FileNotFoundError(_no_annotator(name))
        return Path(a.checkpoint)
    wd = launch.workdir(f"annotator/{name}", cfg.scale, 0)
    ckpt = wd / "model.safetensors"
    pub = published_annotator(cfg, name)

    def build():  # collective: DDP training under torchrun; only rank 0 writes the file
        if pub is not None:
            if dist.is_main():
                wd.mkdir(parents=True, exist_ok=True)
                tmp = ckpt.with_suffix(".tmp")
                shutil.copyfile(pub["path"], tmp)
                os.replace(tmp, ckpt)
            return
        root = world_dir(cfg)
        samples = [Sample(f"{split}/{s.path}", s.label) for split in a.train_splits
                   for s in _samples(root / split, data_roots(cfg).classes)]
        ds = TrainSet(root, samples, train_transform_for(a.train), seed=0, cache=cfg.cache_images)
        set_aside_earlier_recipe(wd / "train", a.train)
        res = train(a.train, ds, wd / "train", workers=cfg.workers)
        if dist.is_main():
            save_model(res.model, ckpt, arch=a.train.model, model_kwargs=a.train.model_kwargs,
                       num_classes=a.train.num_classes,
                       extra={"train_wall_s": res.wall_s, "config_hash": config_hash(a.recipe())})

    # another recipe's annotator is set aside with its training folder and retrained; its label artifacts carry
    # the recipe hash in their names (_annotator_tag), so they are made anew too
    stamped.artifact(ckpt, annotator_identity(cfg, name), build, collective=pub is None,
                     companions=(wd / "train",))
    # the same folder is the workdir of the `annotator/<name>` experiment (Fig. 4, Table 10's init), which the
    # launcher judges by its recipe stamp: stamp it too, or run_job / ensure_checkpoint would set this current
    # annotator aside as unstamped and train it again (its recipe is its training config)
    recipe = annotator_recipe(cfg, name)
    if dist.is_main() and launch.stamped_recipe(wd) != config_hash(recipe):
        stamped.write_stamp(wd / launch.RECIPE_STAMP, recipe)
    return ckpt


def annotator_recipe(cfg, name: str = "default") -> dict:
    """The recipe of the `annotator/<name>` experiment for an annotator made at mini: its training config, plus the
    sha256 of the published weights when those are taken (a re-published file re-runs its records)."""
    a = annotator_config(cfg, name)
    pub = published_annotator(cfg, name)
    return {**a.recipe(), **({"published_weights_sha256": pub["sha256"]} if pub else {})}


def _no_annotator(name: str) -> str:
    var = "RELABEL_ANNOTATOR_CKPT" + ("" if name == "default" else f"_{name.upper()}")
    return (f"full scale needs the annotator '{name}': set {var} to a .safetensors checkpoint of ours"
            + (", or RELABEL_OFFICIAL_MAPS to import the released maps" if name == "default" else ""))


def official_fingerprint(root: str | os.PathLike) -> str:
    """The identity of an official label-map release without hashing its 1.28M files: the sorted names of its
    wnid folders, and for 16 folders evenly spaced among them, their sorted file names and sizes and the bytes of
    their first and last file. Another release, or one missing or adding folders or files in those 16, gets
    another fingerprint; an edit to one map in another folder does not (the store is fingerprinted against the
    dataset, and every imported map is read, so a damaged one still fails the import)."""
    root = Path(root)
    if not root.is_dir():
        raise launch.RecipeUnavailable(f"RELABEL_OFFICIAL_MAPS={root} is not a folder; unpack the release "
                                       "(imagenet_efficientnet_l2_sz475_top5/<wnid>/<wnid>_<id>.pt) there")
    st = root.stat()
    return _official_fingerprint(str(root.resolve()), st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _official_fingerprint(root: str, _mtime: int) -> str:
    h = hashlib.sha256()
    folders = [p.name for p in class_folders(root)]  # hidden folders and lost+found do not change it
    h.update("\n".join(folders).encode())
    for name in folders[::max(1, len(folders) // 16)][:16]:
        files = sorted((e.name, e.stat().st_size) for e in os.scandir(os.path.join(root, name)) if e.is_file())
        h.update(json.dumps([name, files]).encode())
        for f, _ in files[:1] + files[-1:]:
            h.update(Path(root, name, f).read_bytes())
    return h.hexdigest()


def annotator_identity(cfg, name: str = "default") -> dict:
    """What an annotator's maps are made by, for the stamps and names of its artifacts and the recipes of the rows
    that read it: the hash of its training recipe (trained here), the sha256 of its checkpoint file (external,
    cached by path, size and mtime) or the official release's fingerprint. Raises RecipeUnavailable when the user
    has not said which annotator (full scale without RELABEL_ANNOTATOR_CKPT / RELABEL_OFFICIAL_MAPS)."""
    if name not in ANNOTATORS:
        return {"oracle": "the mini world's masks"} if name == "oracle" else {"name": name}
    a = annotator_config(cfg, name)
    if a.train is not None:  # trained here, or published (then its weights are part of what made the maps)
        pub = published_annotator(cfg, name)  # ... and how its maps are read (another stride: other maps)
        return {"recipe": config_hash(a.recipe()), "read": {"input_size": a.input_size, **a.read_kwargs},
                **({"weights_sha256": pub["sha256"]} if pub else {})}
    if name == "default" and a.official_maps:  # the release, when both are set (as the import takes it)
        return {"official_release": official_fingerprint(a.official_maps)}
    if not a.checkpoint:
        raise launch.RecipeUnavailable(_no_annotator(name))
    if not Path(a.checkpoint).is_file():
        raise launch.RecipeUnavailable(f"the annotator checkpoint {a.checkpoint} (annotator '{name}') does not "
                                       "exist; point the variable at a .safetensors file")
    return {"checkpoint_sha256": file_sha256(a.checkpoint)}


def recipe_annotators(cfg, names) -> dict:
    """The part of a row's recipe naming the annotators whose maps or predictions it reads: {'annotators': {name:
    identity}} — a checkpoint file, the official release, or (trained here) the annotator's training recipe — so
    a record made with maps A is stale under maps B, and a re-trained mini annotator re-runs the rows that read
    it (issue 14: before, a mini annotator's recipe was not part of its readers' recipes)."""
    ids = {n: annotator_identity(cfg, n) for n in sorted(set(names)) if n in ANNOTATORS}
    return {"annotators": ids} if ids else {}


def annotator(cfg, name: str = "default") -> tuple[torch.nn.Module, float]:
    """(the annotator in eval mode, read fully-convolutionally, seconds spent training it here)."""
    ckpt = annotator_checkpoint(cfg, name)
    return load_model(ckpt, **annotator_config(cfg, name).read_kwargs), 0.0


def annotator_train_seconds(cfg, name: str = "default") -> float:
    """Seconds it took to train the annotator here (0 for an external checkpoint); not part of a row's cost."""
    return float(read_meta(annotator_checkpoint(cfg, name)).get("extra", {}).get("train_wall_s", 0.0))


def annotator_gflops(cfg, name: str = "default") -> float:
    """Multiply-adds (G) of one annotation forward: the dense-map reading at the annotator's input size."""
    return model_stats(annotator(cfg, name)[0], annotator_config(cfg, name).input_size)["gflops"]


def teacher(cfg, name: str) -> tuple[torch.nn.Module, int, float]:
    """A KD teacher (Fig. 6): the annotator `name` as a plain classifier in eval mode, the input size it was
    trained at (the student's crop is resized to it, App. D.3) and its multiply-adds (G) per forward there."""
    model = load_model(annotator_checkpoint(cfg, name))
    size = annotator_config(cfg, name).input_size
    return model, size, model_stats(model, size)["gflops"]


def _base_k(cfg) -> int:
    return 5 if cfg.annotator.official_maps else min(10, cfg.target.num_classes)


def _annotator_tag(cfg, name: str) -> str:
    """An annotator's name with its identity, as its artifacts are named: the hash of its training recipe (mini),
    `sha-<12>` of its checkpoint file or `official-<12>` of the released maps (full). Maps, extra-data subset and
    clean list of another annotator are made anew instead of outliving it. The oracle keeps its plain name."""
    if name not in ANNOTATORS:
        return name
    ident = annotator_identity(cfg, name)
    short = (ident["recipe"][:8] + (f"-w{ident['weights_sha256'][:8]}" if "weights_sha256" in ident else "")
             if "recipe" in ident else f"sha-{ident['checkpoint_sha256'][:12]}"
             if "checkpoint_sha256" in ident else f"official-{ident['official_release'][:12]}")
    return f"{name}@{short}"


def _store_path(cfg, dtype: str, k: int, name: str = "default", tag: str = "") -> Path:
    return _artifacts(cfg) / "stores" / f"{_annotator_tag(cfg, name)}-{tag + '-' if tag else ''}{dtype}-k{k}"


def _open(path: Path, root: Path, paths: list[str]) -> LabelMapStore:
    return LabelMapStore.open(path, dataset_paths=paths, dataset_sizes=file_sizes(root, paths))


def label_store(cfg, dtype: str = "float32", k: int = 5, annotator_name: str = "default"
                ) -> tuple[LabelMapStore, float]:
    """(the store of the train split at this dtype and k, seconds its annotation took), building it if missing."""
    root, samples = train_samples(cfg)
    return _store_of(cfg, root, [s.path for s in samples], dtype, k, annotator_name)


def oracle_grid(cfg) -> tuple[int, int]:
    """The default annotator's map grid (input size / output stride), which the oracle maps share."""
    a = cfg.annotator
    g = a.input_size // a.read_kwargs.get("output_stride", 32)
    return (g, g)


def annotation_job(cfg, annotator_name: str = "default", tag: str = "") -> dict:
    """The annotation job behind a built store: {'images', 'seconds', ...} (images = annotator forwards)."""
    base = _store_path(cfg, "float32", _base_k(cfg), annotator_name, tag)
    return json.loads((base / "annotation.json").read_text())


def _complete(path: Path) -> bool:
    return (path / "meta.json").is_file() and json.loads((path / "meta.json").read_text())["complete"]


def _store_of(cfg, root: Path, paths: list[str], dtype: str, k: int, annotator_name: str = "default",
              tag: str = "") -> tuple[LabelMapStore, float]:
    kb = _base_k(cfg)
    if k > kb:
        raise ValueError(f"top-{k} maps need a base store with k >= {k}, but this scale's base has k={kb}")
    official = cfg.annotator.official_maps if annotator_name == "default" and not tag else ""
    if annotator_name == "oracle" and (cfg.scale != "mini" or tag):
        raise ValueError("oracle label maps exist only for the mini world's train split (its masks)")
    base = _store_path(cfg, "float32", kb, annotator_name, tag)
    # the identity of *all* the store's inputs: whose maps, at which dtype and k, of which images
    ident = {"annotator": annotator_identity(cfg, annotator_name), "dtype": "float32", "k": kb,
             "dataset": dataset_fingerprint(paths)}

    def build_base():
        if official:  # rank 0 alone (the others wait at the artifact's barrier)
            import_official(official, base, image_paths=paths, score_dtype="float32",  # as `base` is named
                            sizes=file_sizes(root, paths))  # fingerprinted as its derived stores are
            job = {"seconds": 0.0, "source": "official"}
        elif annotator_name == "oracle":  # mini only: the world's own masks as the annotator (pretrain/oracle.py)
            oracle.build_store(root, paths, base, cfg.target.num_classes, oracle_grid(cfg), k=kb)
            job = None
        else:  # collective: every rank annotates its shard (relabel.annotate), rank 0 holding the lock
            model, _ = annotator(cfg, annotator_name)
            a = annotator_config(cfg, annotator_name)
            st = annotate(model, root, paths, base, k=kb, input_size=a.input_size, score_dtype="float32",
                          annotator=a.train.model if a.train else Path(a.checkpoint).stem,
                          batch_size=64, workers=cfg.workers)
            job = {**st, "annotator": annotator_name, "identity": ident["annotator"]}
        if job is not None and dist.is_main():
            write_json_atomic(base / "annotation.json", job)

    stamped.artifact(base, ident, build_base, ready=lambda: _complete(base),
                     collective=not official and annotator_name != "oracle")
    seconds = json.loads((base / "annotation.json").read_text()).get("seconds", 0.0)
    if (dtype, k) == ("float32", kb):
        return _open(base, root, paths), seconds
    path = _store_path(cfg, dtype, k, annotator_name, tag)
    stamped.artifact(path, {**ident, "dtype": dtype, "k": k},
                     lambda: derive_store(_open(base, root, paths), path, dtype, k, root, paths),
                     ready=lambda: _complete(path))
    return _open(path, root, paths), seconds


def derive_store(base: LabelMapStore, path: Path, dtype: str, k: int, root: Path, paths: list[str],
                 batch: int = 512) -> LabelMapStore:
    """A store with the top-k of `base` at another score dtype (Table 6), without re-running the annotator."""
    m = base.meta
    w = LabelMapStore.create(path, paths, num_classes=m.num_classes, k=k, grid=m.grid, score_dtype=dtype,
                             annotator=m.annotator, input_size=m.input_size, sizes=file_sizes(root, paths))
    if w.meta.fingerprint != m.fingerprint:
        raise ValueError(f"{path} and its base store {base.path} describe different datasets")
    rows = w.missing()  # both stores hold the same sorted paths, so row i is the same image in each
    for i in range(0, len(rows), batch):
        s, idx = base.read_batch(rows[i:i + batch])
        top = s.topk(k, dim=1)
        w.write(rows[i:i + batch], top.values, idx.gather(1, top.indices))
    return w.finalize()


def _global_scores(store: LabelMapStore, paths: list[str], num_classes: int, batch: int = 512) -> torch.Tensor:
    """[N, C] spatial mean of each image's top-k map (absent classes at 0): the annotator's global logits."""
    out = []
    for i in range(0, len(paths), batch):
        s, idx = store.read_batch(store.rows(paths[i:i + batch]))
        dense = torch.zeros(len(s), num_classes).scatter_add_(1, idx.flatten(1).long(), s.float().flatten(1))
        out.append(dense / (s.shape[2] * s.shape[3]))
    return torch.cat(out)


def extra_dir(cfg) -> Path:
    """Table 5's extra images: the mini world's extra split (the annotator's own training set), or ImageNet-21K."""
    if cfg.scale == "mini":
        return world_dir(cfg) / "extra"
    if not cfg.extra_root or not Path(cfg.extra_root).is_dir():
        raise FileNotFoundError("Table 5's extra data needs IMAGENET21K_ROOT: a folder of ImageNet-21K images in "
                                "class folders (their own labels are not used)")
    return Path(cfg.extra_root)


def extra_subset(cfg, annotator_name: str = "default") -> tuple[list[Sample], float]:
    """Table 5's extra data: every extra image re-labelled by the annotator (its label = the annotator's global
    top-1; the original label is dropped) and sub-sampled class-balanced, at most `cfg.extra_per_class` per top-1
    class, most confident first (paper §4.3: 4M of ImageNet-21K's 14M, balanced as in Noisy Student).
    Returns (samples relative to extra_dir, seconds the annotation of the extra images took)."""
    root = extra_dir(cfg)
    name = f"{_annotator_tag(cfg, annotator_name)}-extra-balanced{cfg.extra_per_class}.json"
    out = _artifacts(cfg) / "stores" / name

    def build():  # collective: the extra split's store may be annotated by every rank; rank 0 writes the subset
        paths = [s.path for s in _samples(root)]
        store, _ = _store_of(cfg, root, paths, "float32", _base_k(cfg), annotator_name, tag="extra")
        if not dist.is_main():
            return
        probs = torch.softmax(_global_scores(store, paths, cfg.target.num_classes), 1)
        conf, top1 = probs.max(1)
        by_class: dict = {}
        for path, c, p in zip(paths, top1.tolist(), conf.tolist()):
            by_class.setdefault(c, []).append((-p, path))
        keep = [(path, c) for c in sorted(by_class) for _, path in sorted(by_class[c])[:cfg.extra_per_class]]
        write_json_atomic(out, {"images": keep, "of": len(paths), "per_class": {
            str(c): min(len(v), cfg.extra_per_class) for c, v in sorted(by_class.items())}})

    # the extra images are identified by their class folders (listing every file of ImageNet-21K here would cost
    # minutes; the store they are read from fingerprints every path)
    folders = [p.name for p in class_folders(root)]
    stamped.artifact(out, {"annotator": annotator_identity(cfg, annotator_name), "per_class": cfg.extra_per_class,
                           "extra_folders": config_hash({"folders": folders})}, build, collective=True)
    seconds = annotation_job(cfg, annotator_name, "extra").get("seconds", 0.0)
    return [Sample(p, int(c)) for p, c in json.loads(out.read_text())["images"]], seconds


def train_with_extra(cfg, dtype: str = "float32", k: int = 5, annotator_name: str = "default"
                     ) -> tuple[Path, list[Sample], LabelMapStore, float]:
    """(root, train + balanced extra samples relative to root, their label-map store, annotation seconds of both
    the extra split and this store): the training set of Table 5's '+ extra data' row."""
    troot, tsamples = train_samples(cfg)
    extra, extra_seconds = extra_subset(cfg, annotator_name)
    eroot = extra_dir(cfg)
    root = Path(os.path.commonpath([troot.resolve(), eroot.resolve()]))
    pt, pe = troot.resolve().relative_to(root).as_posix(), eroot.resolve().relative_to(root).as_posix()
    samples = ([Sample(f"{pt}/{s.path}", s.label) for s in tsamples]
               + [Sample(f"{pe}/{s.path}", s.label) for s in extra])
    store, seconds = _store_of(cfg, root, [s.path for s in samples], dtype, k, annotator_name,
                               tag=f"trainextra{cfg.extra_per_class}")
    return root, samples, store, seconds + extra_seconds


def clean_list(cfg) -> set[str]:
    """Relative paths kept by label cleaning (Beyer et al.): their list at full scale; at mini, the images whose
    label is the annotator's global top-1 (a strong model agreeing with the original label)."""
    if cfg.scale == "full":
        if not cfg.clean_list:
            raise FileNotFoundError("set RELABEL_CLEAN_LIST to Beyer et al.'s fnames_clean.txt")
        names = {Path(l.strip()).name for l in Path(cfg.clean_list).read_text().splitlines() if l.strip()}
        return {s.path for s in train_samples(cfg)[1] if Path(s.path).name in names}
    out = _artifacts(cfg) / "stores" / f"clean_list-{_annotator_tag(cfg, 'default')}.txt"
    root, samples = train_samples(cfg)

    def build():  # collective: the store may be annotated by every rank; rank 0 writes the list
        store, _ = label_store(cfg, "float32", _base_k(cfg))
        if not dist.is_main():
            return
        keep = []
        for i in range(0, len(samples), 512):
            chunk = samples[i:i + 512]
            s, idx = store.read_batch(store.rows([x.path for x in chunk]))
            dense = torch.zeros(len(chunk), cfg.target.num_classes).scatter_add_(1, idx.flatten(1), s.flatten(1))
            keep += [x.path for x, top in zip(chunk, dense.argmax(1).tolist()) if top == x.label]
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text("\n".join(keep) + "\n")
        tmp.replace(out)

    stamped.artifact(out, {"annotator": annotator_identity(cfg, "default"), "k": _base_k(cfg),
                           "dataset": dataset_fingerprint([x.path for x in samples]),
                           "labels": config_hash({"labels": [int(x.label) for x in samples]})},
                     build, collective=True)
    return {l for l in out.read_text().splitlines() if l}


def train_annotations(cfg) -> list[dict]:
    """The train images with their objects' boxes (the mini world's train/annotations.json 'images': file, width,
    height, label, objects of class and box), for Fig. 5."""
    if cfg.scale != "mini":
        raise NotImplementedError("Fig. 5 at full scale needs ImageNet train boxes; not wired yet")
    return json.loads((world_dir(cfg) / "train" / "annotations.json").read_text())["images"]


def val_boxes(cfg) -> tuple[list, list, str]:
    """Boxes of each val image's labelled class and image sizes (width, height), for Fig. 2."""
    if cfg.scale == "mini":
        ann = json.loads((world_dir(cfg) / "val" / "annotations.json").read_text())
        boxes = [[o["box"] for o in im["objects"] if o["class"] == im["label"]] for im in ann["images"]]
        return boxes, [(im["width"], im["height"]) for im in ann["images"]], "val"
    folder = os.environ.get("IMAGENET_VAL_BOXES")
    if not folder:
        raise FileNotFoundError("set IMAGENET_VAL_BOXES to the folder of ImageNet val bounding-box XML files")
    boxes, sizes = [], []
    for xml in sorted(Path(folder).glob("*.xml")):
        size, objs = read_voc_boxes(xml)
        boxes.append([b for _, b in objs])
        sizes.append(size)
    return boxes, sizes, "val"


def data_roots(cfg):
    # given_by='make': a missing-data error names IMAGENET_ROOT, the knob of make / results.make (not --data-root)
    return (E.DataRoots.mini(world_dir(cfg), given_by="make") if cfg.scale == "mini"
            else E.DataRoots.full(cfg.data_root, given_by="make"))

"""Model checkpoints: our safetensors files (timm architecture in the metadata) and the official ReLabel `.pth`.

`save_model` writes `<name>.safetensors` whose metadata holds the timm model name, its create_model kwargs and
the class count, so `load_model(path)` rebuilds the model without the config that trained it. `load_checkpoint`
also reads PyTorch files (`.pth`/`.pt`/`.pth.tar`), such as the ResNet-50 the ReLabel authors released: a
torchvision state dict, often saved from `nn.DataParallel` (keys prefixed `module.`) and wrapped in
`{'state_dict': ..., 'arch': ...}`. torchvision's ResNet parameter names are timm's, so the mapping is: unwrap,
strip the prefix, load into `timm.create_model(arch)`. Nothing is ever unpickled (`torch.load(weights_only=True)`).

Nothing downloads weights here, so a model from elsewhere (timm's `tf_efficientnet_l2_ns_475`, the paper's
annotator; torchvision's ResNet-50, Table 10's init) enters as a local file, converted once into ours::

    python -m relabel.checkpoint convert --arch tf_efficientnet_l2_ns_475 --weights FILE.pth --out annotator.safetensors

FILE may be a `.pth`/`.pt`/`.bin` state dict or a `.safetensors` (e.g. timm's `model.safetensors` from its hub
page); the model is built with `pretrained=False`, the weights must fit it exactly, and the result names its
architecture, so no later command needs `--arch`.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import timm

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file, safe_open

from relabel.atomic_write import atomic_write, tensor_bytes
from relabel.records import file_sha256

TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".bin", ".ckpt")
# torchvision/timm ResNets by (blocks per stage, bottleneck?): lets an official `.pth` load without --arch.
_RESNETS = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34",
            ((3, 4, 6, 3), True): "resnet50", ((3, 4, 23, 3), True): "resnet101",
            ((3, 8, 36, 3), True): "resnet152"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model."""


class ArchitectureUnknown(CheckpointError):
    """A weights file that does not say which timm architecture it is for."""


@dataclass
class Checkpoint:
    """A loaded model and where it came from (what a run record needs to name it)."""
    model: nn.Module
    arch: str
    num_classes: int
    model_kwargs: dict = field(default_factory=dict)
    format: str = "safetensors"  # or "torch" (a .pth state dict)
    extra: dict = field(default_factory=dict)  # metadata saved with it (e.g. the training config)
    sha256: str = ""


def save_model(model: nn.Module, path: str | os.PathLike, *, arch: str, model_kwargs: dict | None = None,
               num_classes: int | None = None, extra: dict | None = None) -> Path:
    path = Path(path)
    meta = {"arch": arch, "model_kwargs": json.dumps(model_kwargs or {}, sort_keys=True),
            "num_classes": str(num_classes if num_classes is not None else model.num_classes),
            "extra": json.dumps(extra or {}, sort_keys=True)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # temp file + rename, free space checked first: a full disk leaves any earlier checkpoint at `path` intact
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta),
                        tensor_bytes(tensors) + len(json.dumps(meta)), what=f"checkpoint {path}",
                        error=CheckpointError)


def _reason(e: BaseException, limit: int = 120) -> str:
    """An exception's first line, cut at a word (never mid-word), for a one-sentence error."""
    lines = str(e).strip().splitlines()
    first = lines[0].strip() if lines else type(e).__name__
    first = first.split(". ", 1)[0].rstrip(".")  # its first sentence: what failed, not the library's advice
    return first if len(first) <= limit else first[:limit].rsplit(" ", 1)[0].rstrip(" ,;:") + " …"


def _unreadable(path: Path, kind: str, e: BaseException) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} cannot be read as a {kind} file ({_reason(e)}); it is truncated, "
                           "corrupt or not a checkpoint: copy or save it again.")


def read_meta(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # SafetensorError: a header too small, incomplete metadata, ...
        raise _unreadable(path, ".safetensors", e) from None
    out = dict(meta)
    for key in ("model_kwargs", "extra"):
        if key in out:
            out[key] = json.loads(out[key])
    if "num_classes" in out:
        out["num_classes"] = int(out["num_classes"])
    return out


def load_model(path: str | os.PathLike, arch: str | None = None, **model_kwargs) -> nn.Module:
    """Rebuilds the timm model stored in a checkpoint (arch/kwargs from its metadata unless given)."""
    return load_checkpoint(path, arch, **model_kwargs).model


def load_checkpoint(path: str | os.PathLike, arch: str | None = None, num_classes: int | None = None,
                    **model_kwargs) -> Checkpoint:
    """A `.safetensors` of ours or a PyTorch state-dict file, as a timm model in eval mode plus its provenance.

    `arch` overrides the stored architecture (required for a `.pth` that is neither a ResNet nor names its
    `arch`); `num_classes` is checked against the checkpoint's classifier, never used to reshape it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a .safetensors or .pth file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes), as a copy or save cut off at its start "
                              "leaves it; copy or save it again.")
    if path.suffix == ".safetensors":
        meta = read_meta(path)
        try:
            state = load_file(str(path))
        except Exception as e:  # a header that parses over data cut short
            raise _unreadable(path, ".safetensors", e) from None
        fmt, extra = "safetensors", meta.get("extra", {})
        arch = arch or meta.get("arch")
        kwargs = {**meta.get("model_kwargs", {}), **model_kwargs}
    elif path.suffix in TORCH_SUFFIXES or path.name.endswith(".pth.tar"):
        state, stored_arch = _read_torch_state(path)
        fmt, extra, kwargs = "torch", {}, dict(model_kwargs)
        arch = arch or _timm_arch(stored_arch) or _infer_resnet(state)
    else:
        raise CheckpointError(f"{path} is neither a .safetensors nor a PyTorch (.pth/.pt) checkpoint.")
    if not arch:
        raise ArchitectureUnknown(f"{path} does not name its architecture; convert it once with "
                                  f"`{convert_command(path)}` (the result names it), or pass --arch to a command "
                                  "that takes one.")
    if not timm.is_model(arch.split(".")[0]):
        raise CheckpointError(f"'{arch}' is not a timm architecture; give a timm model name (timm.list_models()), "
                              "e.g. with --arch.")
    model, stored_classes = _build(arch, state, kwargs, path)
    if num_classes is not None and stored_classes != num_classes:
        raise CheckpointError(f"{path} has a {stored_classes}-class classifier but {num_classes} classes were "
                              f"expected; use a checkpoint trained on this dataset.")
    return Checkpoint(model.eval(), arch, stored_classes, kwargs, fmt, extra, file_sha256(path))


def _read_torch_state(path: Path) -> tuple[dict, str | None]:
    try:
        with warnings.catch_warnings():  # torch's note on a protocol-4 pickle would precede our one sentence
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle that needs code to load, or not a torch file at all
        raise torch_load_error(path, e, "checkpoint") from None
    stored_arch = obj.get("arch") if isinstance(obj, dict) and isinstance(obj.get("arch"), str) else None
    for key in ("state_dict", "model", "model_state_dict"):  # training-script wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors (nor one under 'state_dict' or 'model').")
    state = {}
    for k, v in obj.items():
        while k.startswith("module."):  # nn.DataParallel / DistributedDataParallel
            k = k[len("module."):]
        state[k] = v
    return state, stored_arch


def torch_load_error(path: Path, e: BaseException, what: str, error: type[Exception] = CheckpointError) -> Exception:
    """One sentence for a file `torch.load(weights_only=True)` would not read: refused as unsafe (a pickle that
    needs code to load: never executed), or truncated / corrupt / not a torch file."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) or "weights only load failed" in text.lower():
        found = re.search(r"(?:GLOBAL|global) ([\w.]+)", text)
        code = f" ({found.group(1)})" if found else ""
        return error(f"{what} {path} was refused as unsafe: it is a pickle that needs code{code} to load, which "
                     "torch.load(weights_only=True) never runs; use a plain tensor/state-dict file (or a "
                     ".safetensors) from a source you trust.")
    return error(f"{what} {path} cannot be read as a PyTorch file ({_reason(e)}); it is truncated, corrupt or "
                 "not a torch file: copy or save it again.")


def _timm_arch(name: str | None) -> str | None:
    return name if name and timm.is_model(name.split(".")[0]) else None


def _infer_resnet(state: dict) -> str | None:
    blocks = []
    for stage in range(1, 5):
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        blocks.append(max(ids) + 1 if ids else 0)
    return _RESNETS.get((tuple(blocks), "layer1.0.conv3.weight" in state))


def misfit(model: nn.Module, state_dict: dict, *, head: str | tuple | None = None) -> str | None:
    """Why `state_dict` does not fit `model`, in a few words for a one-sentence error (None: it fits exactly): the
    shapes that differ first (the first named with both shapes), else the keys the model has and the state lacks,
    else the keys the state has and the model lacks. `head`: the classifier's module name(s), whose weights may
    differ in shape or be absent (fine-tuning with a new classifier); a key the model lacks never fits. The one
    check behind every loader: checkpoints of ours, `.pth` files, fine-tuning inits and transfer backbones."""
    heads = (head,) if isinstance(head, str) else tuple(head or ())
    own = model.state_dict()

    def free(k: str) -> bool:
        return any(k.startswith(h + ".") for h in heads)
    shapes = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape and not free(k)]
    if shapes:
        k = shapes[0]
        return (f"shape mismatch in {shapes[:3]}: {k} is {tuple(state_dict[k].shape)} in the weights, "
                f"{tuple(own[k].shape)} in the model")
    missing = sorted(k for k in own.keys() - state_dict.keys() if not free(k))
    if missing:
        return f"missing {missing[:3]}"
    unexpected = sorted(state_dict.keys() - own.keys())
    return f"unexpected {unexpected[:3]}" if unexpected else None


def _build(arch: str, state: dict, kwargs: dict, path: Path) -> tuple[nn.Module, int]:
    """The timm model with the checkpoint's class count, loaded strictly; one-sentence errors on mismatch."""
    with torch.device("meta"):  # only its head's name and default class count: no memory, no init (L2: 480M)
        probe = timm.create_model(arch, pretrained=False, **kwargs)
    head = probe.default_cfg.get("classifier", "fc")
    head = head[0] if isinstance(head, (list, tuple)) else head
    w = state.get(f"{head}.weight")
    num_classes = int(w.shape[0]) if w is not None and w.ndim == 2 else probe.num_classes
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs)
    why = misfit(model, state)
    if why:
        raise CheckpointError(f"{path} does not fit timm '{arch}' with {num_classes} classes ({why}); "
                              f"pass the --arch (and model kwargs) it was trained with.")
    model.load_state_dict(state)
    return model, num_classes


def timm_pretrained(name: str, local_option: str) -> nn.Module:
    """timm's pretrained `name` (e.g. 'resnet50.tv_in1k') from the Hugging Face cache, or from the hub after one
    quick look that it answers; where neither has it, one sentence naming `local_option` (how to give a local
    weights file instead) — not the minute huggingface_hub spends retrying before it fails offline."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    if not timm.is_model(name.split(".")[0]):
        raise CheckpointError(f"'{name}' is not a timm model name; give one of timm.list_models(pretrained=True).")
    try:  # the pretrained config of this tag (the default tag without one), as timm resolves it
        with torch.device("meta"):  # only its config is read: no weights allocated
            hub_id = timm.create_model(name, pretrained=False).pretrained_cfg.get("hf_hub_id")
    except RuntimeError as e:  # an unknown tag
        raise CheckpointError(f"timm cannot make '{name}' ({e}).") from None
    if not hub_id:
        raise CheckpointError(f"timm has no hub weights for '{name}'; {local_option}.")
    for filename in ("model.safetensors", "pytorch_model.bin"):  # what timm's hub loader fetches, in its order
        cached = try_to_load_from_cache(hub_id, filename)
        if isinstance(cached, str):
            return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": cached})
    try:
        get_hf_file_metadata(hf_hub_url(hub_id, "model.safetensors"), timeout=10)  # one try, no retries
    except HfHubHTTPError:
        pass  # the hub answered (e.g. no safetensors file): timm's own loader takes it from here
    except Exception as e:  # no network, HF_HUB_OFFLINE, a proxy refusing
        raise CheckpointError(f"timm's pretrained '{name}' is not in the local Hugging Face cache and the hub "
                              f"cannot be reached ({type(e).__name__}); {local_option}.") from None
    return timm.create_model(name, pretrained=True)


def convert_command(weights: str | os.PathLike = "FILE.pth", arch: str = "<timm model name>") -> str:
    """The command that turns a weights file into a checkpoint of ours (named in errors about such files)."""
    stem = Path(weights).name.split(".")[0]
    out = f"{stem}-converted.safetensors" if str(weights).endswith(".safetensors") else f"{stem}.safetensors"
    return f"python -m relabel.checkpoint convert --arch {arch} --weights {weights} --out {out}"


def convert(weights: str | os.PathLike, out: str | os.PathLike, arch: str | None = None,
            **model_kwargs) -> Checkpoint:
    """A local timm/torchvision weights file as our `.safetensors` (architecture, kwargs and class count in its
    metadata, the source file's name and sha256 in `extra`); returns the written checkpoint, loaded back."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"--out {out} must end in .safetensors (the format that keeps the architecture).")
    if Path(weights).resolve() == out.resolve():
        raise CheckpointError(f"--out {out} is the weights file itself; write the converted checkpoint elsewhere.")
    if not out.parent.is_dir():
        raise CheckpointError(f"folder {out.parent} of --out does not exist; create it first.")
    try:
        ck = load_checkpoint(weights, arch, **model_kwargs)
    except ArchitectureUnknown:
        raise ArchitectureUnknown(f"{weights} does not name its architecture; pass --arch with its timm model name "
                                  "(e.g. tf_efficientnet_l2_ns_475, resnet50).") from None
    extra = {**ck.extra, "converted_from": Path(weights).name, "source_sha256": ck.sha256}
    save_model(ck.model, out, arch=ck.arch, model_kwargs=ck.model_kwargs, num_classes=ck.num_classes, extra=extra)
    return Checkpoint(ck.model, ck.arch, ck.num_classes, ck.model_kwargs, "safetensors", extra, file_sha256(out))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m relabel.checkpoint",
        description="Checkpoint tools. `convert` turns a local timm/torchvision weights file into a checkpoint of "
                    "ours (.safetensors naming its timm architecture), usable as an annotator "
                    "(RELABEL_ANNOTATOR_CKPT, python -m relabel.annotate --ckpt) or an init (RELABEL_COCO_INIT) "
                    "without --arch. Nothing is downloaded.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="a weights file -> our .safetensors with the architecture in its metadata",
                       description="Builds the timm model with pretrained=False, loads the weights (safetensors, or "
                                   "torch.load with weights_only=True: nothing is unpickled), checks they fit exactly "
                                   "and writes --out atomically. Example: --arch tf_efficientnet_l2_ns_475 --weights "
                                   "tf_efficientnet_l2_ns_475-bebbd00a.pth --out annotator.safetensors")
    c.add_argument("--weights", required=True, help="the local file: .pth/.pt/.bin/.pth.tar state dict or .safetensors")
    c.add_argument("--arch", default=None,
                   help="timm model name (e.g. tf_efficientnet_l2_ns_475, resnet50); optional when the file names "
                        "it (ours, or a training checkpoint with an 'arch' entry) or is a torchvision ResNet")
    c.add_argument("--out", required=True, help="where to write the checkpoint (.safetensors)")
    args = p.parse_args(argv)
    try:
        ck = convert(args.weights, args.out, args.arch)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    params = sum(v.numel() for v in ck.model.state_dict().values())
    print(f"wrote {args.out}: timm '{ck.arch}', {ck.num_classes} classes, {params / 1e6:.1f}M parameters "
          f"(from {Path(args.weights).name}, sha256 {ck.extra['source_sha256'][:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

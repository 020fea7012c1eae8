"""What this machine's CPU can do for training: bf16 in hardware or not (ISA flags, oneDNN's cap), the CPU class
the mini timings depend on, and glibc's allocator kept from returning freed memory on CPU runs.

The trainer asks `cpu_bf16_enabled()` whether an `amp_cpu` recipe trains in bf16 autocast here; the demo, the
annotator's publication note and the benches name the `cpu_class()` their timings were measured on. None of it
enters a recipe: it decides how fast a run goes, never what it computes beyond bf16 rounding (issue 17).
"""
from __future__ import annotations

import os
import platform

import torch

from relabel.configs import ConfigError

# oneDNN's ISA levels below AVX512_CORE_BF16: a cap (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA) among
# them makes oneDNN emulate bf16, as a CPU without bf16 instructions does; other values (higher levels, DEFAULT,
# unknown ones) leave bf16 to the hardware, as oneDNN does. AVX2_VNNI_2's AVX-NE-CONVERT only converts bf16 to fp32
# and back (no bf16 dot product), so it counts as no bf16 here (whether bf16 would still save memory traffic there
# is not measured).
_ONEDNN_NO_BF16_ISAS = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                                  "AVX512_CORE_VNNI"})
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 in hardware: AVX512-BF16 or AMX on x86 (the CPU's own flags, through
    torch.cpu), with oneDNN allowed to use them (no ONEDNN_MAX_CPU_ISA cap below AVX512_CORE_BF16).

    oneDNN's own check (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) is true on *every* AVX-512 CPU, where it
    emulates bf16: on a Skylake-to-Ice-Lake-class core (emulated here with ONEDNN_MAX_CPU_ISA=AVX512_CORE) bf16
    autocast made the mini ResNet-50 step 1.7x slower than fp32 (232 vs 138 ms, issue 17). Off x86 (Arm) and with
    a torch too old to report the flags, oneDNN's check stays the test (not measured there)."""
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
    flags = [getattr(torch.cpu, f, None) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    hardware = None if None in flags else any(bool(f()) for f in flags)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA", "")
    return _bf16_in_hardware(onednn, hardware, platform.machine(), cap)


def _bf16_in_hardware(onednn: bool, hardware: bool | None, machine: str, onednn_max_isa: str) -> bool:
    """cpu_bf16_native's rule: on x86, oneDNN's check, the CPU's AVX512-BF16/AMX flags and no oneDNN ISA cap below
    AVX512_CORE_BF16; off x86, or where torch cannot report the flags (hardware None), oneDNN's check alone."""
    if hardware is None or machine.lower() not in _X86:
        return onednn
    return onednn and hardware and onednn_max_isa.strip().upper() not in _ONEDNN_NO_BF16_ISAS


CPU_BF16_ENV = "RELABEL_CPU_BF16"  # auto (default) | 0: never | 1: always (emulated where not native: slow)


def cpu_bf16_enabled() -> bool:
    """Whether a recipe with `amp_cpu` trains in bf16 autocast on this CPU: where the CPU computes bf16 natively,
    unless RELABEL_CPU_BF16=0 (e.g. to time the fp32 path every AVX2 laptop takes); RELABEL_CPU_BF16=1 forces it."""
    mode = os.environ.get(CPU_BF16_ENV, "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise ConfigError(f"{CPU_BF16_ENV} must be auto, 0 or 1, got '{mode}'")
    return cpu_bf16_native() if mode == "auto" else mode == "1"


def cpu_class() -> str:
    """The CPU class the mini timings depend on: 'bf16-native' (AVX512-BF16 / AMX: the mini recipe trains in bf16)
    or the vector ISA PyTorch dispatches to ('AVX2', 'AVX512' without bf16, 'DEFAULT' ...: fp32), as
    torch.backends.cpu.get_cpu_capability() reports it. To emulate an AVX2 laptop on a bf16 machine:
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2; an AVX-512 CPU without bf16 (Skylake to Ice Lake):
    ONEDNN_MAX_CPU_ISA=AVX512_CORE ATEN_CPU_CAPABILITY=avx512."""
    return "bf16-native" if cpu_bf16_native() else torch.backends.cpu.get_cpu_capability()


def keep_freed_memory() -> bool:
    """Makes glibc's malloc keep freed memory for reuse instead of returning it to the OS (CPU training only).

    PyTorch's CPU allocator has no cache: every activation and gradient is a fresh malloc, and glibc serves ones
    above its mmap threshold (128 KB at first) with new pages that fault in on first touch. Raising the mmap and
    trim thresholds (to glibc's 32 MB maximum) lets freed blocks be reused, with bit-identical results: on one
    core a mini ResNet-50 forward/backward measured alone went from ~54-63 to ~50-53 ms, a whole training step with
    its data ~5% faster (three interleaved pairs of 300-step runs). A no-op (False) where the C library is not glibc.
    """
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False

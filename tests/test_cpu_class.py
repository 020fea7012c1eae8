"""The CPU-class switch (issue 17): RELABEL_CPU_BF16 decides the bf16 autocast of `amp_cpu` recipes, and the demo
says which class it runs on."""
import os
import platform
import subprocess
import sys

import pytest

from relabel import hardware as HW


def test_bf16_switch_follows_the_environment(monkeypatch):
    monkeypatch.setattr(HW, "cpu_bf16_native", lambda: True)
    monkeypatch.delenv(HW.CPU_BF16_ENV, raising=False)
    assert HW.cpu_bf16_enabled() and HW.cpu_class() == "bf16-native"
    monkeypatch.setenv(HW.CPU_BF16_ENV, "0")
    assert not HW.cpu_bf16_enabled()
    monkeypatch.setattr(HW, "cpu_bf16_native", lambda: False)
    monkeypatch.setenv(HW.CPU_BF16_ENV, "auto")
    assert not HW.cpu_bf16_enabled() and HW.cpu_class() != "bf16-native"
    monkeypatch.setenv(HW.CPU_BF16_ENV, "1")
    assert HW.cpu_bf16_enabled()
    monkeypatch.setenv(HW.CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="RELABEL_CPU_BF16 must be auto, 0 or 1"):
        HW.cpu_bf16_enabled()



def test_avx512_without_bf16_is_not_bf16_native():
    """oneDNN's own check is true on every AVX-512 CPU (it emulates bf16 there, 1.7x slower than fp32 for the mini
    ResNet-50): the CPU's AVX512-BF16/AMX flags and the ONEDNN_MAX_CPU_ISA cap decide on x86."""
    rule = HW._bf16_in_hardware
    assert rule(onednn=True, hardware=True, machine="x86_64", onednn_max_isa="")
    assert not rule(onednn=True, hardware=False, machine="x86_64", onednn_max_isa="")  # Skylake .. Ice Lake
    for cap in ("AVX2", "avx512_core", "AVX512_CORE_VNNI", "AVX2_VNNI_2"):  # AVX2_VNNI_2: bf16 conversions only
        assert not rule(onednn=True, hardware=True, machine="x86_64", onednn_max_isa=cap)
    for cap in ("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10_1_512_AMX", "DEFAULT", "ALL"):
        assert rule(onednn=True, hardware=True, machine="x86_64", onednn_max_isa=cap)
    assert not rule(onednn=False, hardware=True, machine="x86_64", onednn_max_isa="")
    assert rule(onednn=True, hardware=False, machine="aarch64", onednn_max_isa="")  # Arm: oneDNN's check decides
    assert not rule(onednn=False, hardware=False, machine="arm64", onednn_max_isa="")
    assert rule(onednn=True, hardware=None, machine="x86_64", onednn_max_isa="")  # torch without the flags


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 oneDNN ISA cap")
def test_capping_onednn_below_avx512_bf16_makes_any_x86_cpu_fp32():
    code = "from relabel.hardware import cpu_bf16_enabled, cpu_class; print(cpu_class(), cpu_bf16_enabled())"
    for var, cap in (("ONEDNN_MAX_CPU_ISA", "AVX512_CORE"), ("ONEDNN_MAX_CPU_ISA", "avx2"),
                     ("DNNL_MAX_CPU_ISA", "AVX512_CORE")):  # DNNL_: oneDNN's older name, still read
        env = {k: v for k, v in os.environ.items()
               if k not in (HW.CPU_BF16_ENV, "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
        env[var] = cap
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        cls, enabled = out.stdout.split()
        assert cls != "bf16-native" and enabled == "False", (var, cap, out.stdout)

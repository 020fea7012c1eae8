"""The CPU-class switch (issue 17): RELABEL_CPU_BF16 decides the bf16 autocast of `amp_cpu` recipes, and the demo
says which class it runs on."""
import pytest

from relabel import train as TR


def test_bf16_switch_follows_the_environment(monkeypatch):
    monkeypatch.setattr(TR, "cpu_bf16_native", lambda: True)
    monkeypatch.delenv(TR.CPU_BF16_ENV, raising=False)
    assert TR.cpu_bf16_enabled() and TR.cpu_class() == "bf16-native"
    monkeypatch.setenv(TR.CPU_BF16_ENV, "0")
    assert not TR.cpu_bf16_enabled()
    monkeypatch.setattr(TR, "cpu_bf16_native", lambda: False)
    monkeypatch.setenv(TR.CPU_BF16_ENV, "auto")
    assert not TR.cpu_bf16_enabled() and TR.cpu_class() != "bf16-native"
    monkeypatch.setenv(TR.CPU_BF16_ENV, "1")
    assert TR.cpu_bf16_enabled()
    monkeypatch.setenv(TR.CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="RELABEL_CPU_BF16 must be auto, 0 or 1"):
        TR.cpu_bf16_enabled()


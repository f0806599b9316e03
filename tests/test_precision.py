"""bf16 "auto": on where the CPU multiplies bf16 in hardware, fp32 where it would be emulated."""

import pytest

from speechgpt_hf.training import precision


@pytest.mark.parametrize(
    ("flags", "isa_cap", "expected"),
    [
        ({"avx2", "avx512f", "avx512_bf16"}, None, True),  # e.g. AMD Zen 4/5
        ({"avx2", "avx512f", "amx_tile", "amx_bf16"}, None, True),  # Intel Sapphire Rapids
        ({"avx2", "avx512f"}, None, False),  # bf16 emulated: fp32 instead
        ({"avx2", "avx512f", "avx512_bf16"}, "AVX2", False),  # oneDNN capped below its bf16 kernels
        ({"avx2", "avx512f", "avx512_bf16"}, "AVX512_CORE_BF16", True),
        (set(), None, False),  # flags unreadable
    ],
)
def test_auto_bf16_follows_the_cpu(monkeypatch, flags, isa_cap, expected):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: flags)
    if isa_cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa_cap)
    assert precision.cpu_has_native_bf16() is expected
    assert precision.resolve_bf16("auto") is expected
    assert precision.resolve_bf16(True) is True and precision.resolve_bf16(False) is False


def test_a_bad_setting_is_refused():
    with pytest.raises(ValueError, match="'auto'"):
        precision.resolve_bf16("maybe")


def test_reproduction_settings_take_auto_and_refuse_other_strings():
    from speechgpt_hf.reproduction import PRESETS

    assert PRESETS["quickstart"].override(bf16="auto").bf16 == "auto"
    with pytest.raises(ValueError, match="bf16 must be"):
        PRESETS["quickstart"].override(bf16="yes")


def test_the_cpu_is_named_from_lscpu_or_from_the_platform_without_it(monkeypatch):
    lscpu = "Architecture: x86_64\nCPU(s): 2\nModel name: Example CPU 9000\n"
    monkeypatch.setattr(precision.subprocess, "run", lambda *a, **k: type("Done", (), {"stdout": lscpu})())
    assert precision.cpu_model_name() == "Example CPU 9000, 2 CPUs"

    def missing(*args, **kwargs):
        raise FileNotFoundError("lscpu")

    monkeypatch.setattr(precision.subprocess, "run", missing)
    monkeypatch.setattr(precision.platform, "processor", lambda: "")
    monkeypatch.setattr(precision.os, "cpu_count", lambda: 3)
    assert precision.cpu_model_name() == f"{precision.platform.machine()}, 3 CPUs"

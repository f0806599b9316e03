"""Whether to train in bf16 autocast: on a CPU only where it multiplies bf16 matrices in hardware.

A CPU with AVX-512 BF16 or AMX runs bf16 matrix products several times faster than fp32 (measured on an AMD EPYC
with AVX-512 BF16: 216 against 50 GFLOP/s on one thread, benchmarks/reading.md); a CPU without them emulates bf16,
50-130x slower than fp32 (benchmarks/pretrained_training.md). So "auto" turns bf16 on exactly where it pays.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# CPU flags (as /proc/cpuinfo names them) of the instructions oneDNN's fast bf16 kernels use.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def cpu_model_name() -> str:
    """The CPU's model name as lscpu gives it, with the number of CPUs: what a benchmark names beside its figures."""
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    return f"{fields.get('Model name', platform.machine())}, {fields.get('CPU(s)', os.cpu_count())} CPUs"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions that PyTorch may use: AVX-512 BF16 or AMX in its flags, and
    oneDNN not capped below them (`ONEDNN_MAX_CPU_ISA=AVX2`, say, forces the emulated path)."""
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if capped and capped not in ("ALL", "DEFAULT") and "BF16" not in capped and "AMX" not in capped:
        return False
    return bool(_cpu_flags() & set(NATIVE_BF16_FLAGS))


def resolve_bf16(setting: bool | str, use_cpu: bool = True) -> bool:
    """`setting` as a yes or no: True/False as given; "auto" is bf16 where the device computes it natively (a CPU
    with `cpu_has_native_bf16`, a GPU that supports bf16) and fp32 elsewhere."""
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ValueError(f"bf16 must be True, False or 'auto', got {setting!r}.")
    if use_cpu:
        return cpu_has_native_bf16()
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


__all__ = ["NATIVE_BF16_FLAGS", "cpu_has_native_bf16", "resolve_bf16"]

"""benchmarks/gpu_check.sh (and gpu_check.py) at toy size on the CPU: every measurement runs and lands in the report."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"


def test_tiny_cpu_run_measures_everything_and_says_it_is_no_gpu_measurement(tmp_path):
    output = tmp_path / "gpu_check.md"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `python` is this interpreter
    result = subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu", "--tiny", "--output", str(output)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text()
    assert "has not yet run on a GPU" in text
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections == [
        "unit extraction",
        "vocoder",
        "training step: modality_adaptation",
        "training step: cross_modal",
        "training step: chain_of_modality",
        "chat",
    ]
    values = dict(re.findall(r"^\| ([^|]+?) \| ([^|]+) \|$", text, flags=re.M))
    numbers = {key: float(value) for key, value in values.items() if key not in ("measure", "---")}
    assert numbers["same units (batched fp32)"] == 1  # batching does not change a unit
    assert numbers["first audio s"] <= numbers["whole reply s"]
    assert all(math.isfinite(v) and v > 0 for v in numbers.values()), numbers
    assert {"one at a time, fp32", "batched, bf16", "one by one", "batched", "s/step", "tokens/s"} <= numbers.keys()

"""scripts/run.sh (the README's and CI's command) stops with a clear message when an install step fails, instead of
running the job in a broken environment; a working install stays quiet and runs the job."""

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _fake_venv(venv: Path, pip_status: int, job_status: int = 0) -> None:
    """A ready venv whose pip prints two lines and exits with `pip_status`, and whose python records its arguments
    and exits with `job_status`."""
    _script(venv / "bin" / "pip", f'echo "WARNING: Location noise"; echo "pip says: step output"; exit {pip_status}')
    _script(venv / "bin" / "python", f'echo "$@" > "{venv}/python-ran"; echo "job output"; exit {job_status}')
    (venv / ".speechgpt-hf-ready").touch()


def _run(tmp_path: Path, venv: Path) -> subprocess.CompletedProcess:
    """run.sh `test` with system tools faked: ffmpeg and espeak-ng present, `python3 -m venv` making a venv whose
    pip fails."""
    tools = tmp_path / "tools"
    for name in ("ffmpeg", "espeak-ng"):
        _script(tools / name, "exit 0")
    _script(tools / "failing-pip", 'echo "ERROR: no matching distribution"; exit 1')
    _script(
        tools / "python3",
        f'[ "$1 $2" = "-m venv" ] || exit 3; mkdir -p "$3/bin"; cp "{tools}/failing-pip" "$3/bin/pip"',
    )
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "SPEECHGPT_HF_VENV": str(venv)}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "run.sh"), "test", "-k", "nothing"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_a_failing_pip_in_an_existing_environment_stops_the_run(tmp_path):
    venv = tmp_path / "venv"
    _fake_venv(venv, pip_status=1)
    result = _run(tmp_path, venv)
    assert result.returncode != 0
    assert "pointing" in result.stderr and "failed (pip exit status 1" in result.stderr
    assert "pip says: step output" in result.stderr  # pip's own words are shown
    assert not (venv / "python-ran").exists()  # the job never started


def test_a_failing_pip_in_a_new_environment_stops_before_marking_it_ready(tmp_path):
    venv = tmp_path / "venv"
    result = _run(tmp_path, venv)
    assert result.returncode != 0 and "ERROR: no matching distribution" in result.stderr
    assert "Creating the virtual environment" in result.stdout
    assert "run.sh: upgrading pip failed" in result.stderr
    assert not (venv / ".speechgpt-hf-ready").exists()


def test_a_working_install_is_quiet_and_runs_the_job(tmp_path):
    venv = tmp_path / "venv"
    _fake_venv(venv, pip_status=0)
    result = _run(tmp_path, venv)
    assert result.returncode == 0, result.stderr
    assert "WARNING: Location" not in result.stdout + result.stderr and "failed" not in result.stderr
    assert (venv / "python-ran").read_text().split() == ["-m", "pytest", "-q", "-k", "nothing"]


def test_the_run_ends_with_the_line_that_activates_its_environment(tmp_path):
    venv = tmp_path / "venv"
    _fake_venv(venv, pip_status=0)
    result = _run(tmp_path, venv)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"To use speechgpt-hf in this shell: source {venv}/bin/activate"
    assert lines.index("job output") < len(lines) - 1  # printed after the job, not before it


def test_a_failing_job_still_names_the_environment_and_keeps_its_exit_status(tmp_path):
    venv = tmp_path / "venv"
    _fake_venv(venv, pip_status=0, job_status=3)
    result = _run(tmp_path, venv)
    assert result.returncode == 3
    assert result.stdout.strip().splitlines()[-1].endswith(f"source {venv}/bin/activate")

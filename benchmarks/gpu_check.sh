#!/usr/bin/env bash
# The GPU checks of benchmarks/gpu_check.py on this machine's first GPU; writes benchmarks/gpu_check.md.
# Extra options pass through (e.g. --device cpu --tiny to check the script without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python benchmarks/gpu_check.py "$@"

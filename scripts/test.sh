#!/usr/bin/env bash
# The test suite: CPU only, tiny models built offline. Slow tests run too.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec python -m pytest -q -ra "$@"

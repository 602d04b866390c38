#!/usr/bin/env bash
# The test suite: CPU only, tiny models built offline. Slow tests run too.
# Two pytest-xdist workers by default (ABLATE_TEST_WORKERS=0 runs in one process): tests run
# torch on one thread and wait on subprocesses, so one worker leaves a core of two idle. Each
# test file stays on one worker (--dist loadfile), so module fixtures are built once.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
workers="${ABLATE_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != "0" ]; then parallel=(-n "$workers" --dist loadfile); fi
exec python -m pytest -q -ra --durations=15 "${parallel[@]}" "$@"

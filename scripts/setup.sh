#!/usr/bin/env bash
# Install ablate, its test extras, DeepSpeed (pure Python, no compiled ops), the cluster extras
# (psycopg 3 for PostgreSQL storage, submitit for SLURM) and the example plugin
# into the active Python environment. Run inside a virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
DS_BUILD_OPS=0 python -m pip install -q -e ".[test,deepspeed,cluster]" -e plugins/ablate-example-connector

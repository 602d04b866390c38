#!/usr/bin/env bash
# Install ablate, its test extras, DeepSpeed (pure Python, no compiled ops), the cluster extras
# (psycopg 3 for PostgreSQL storage, submitit for SLURM), lmms-eval and the example plugin
# into the active Python environment. Run inside a virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --upgrade pip
DS_BUILD_OPS=0 python -m pip install -q -e ".[test,deepspeed,cluster,lmms]" -e plugins/ablate-example-connector
# lmms-eval pulls torchvision from PyPI, built for the CUDA torch wheel. Next to a CPU torch its
# operators fail to register, and transformers then cannot import its image processors. Without
# torchvision, transformers uses its PIL image processors, and the lmms-eval paths ablate uses
# need none.
if ! python -c "import torchvision" >/dev/null 2>&1; then
  echo "torchvision does not load next to this torch build: removing it"
  python -m pip uninstall -y -q torchvision
fi

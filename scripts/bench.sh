#!/usr/bin/env bash
# `make bench`: every benchmark in bench/, each printing ratios against its own baseline.
set -uo pipefail
cd "$(dirname "$0")/../bench"
PY=../.venv/bin/python
bash ../scripts/services/databases.sh
for script in list_vms.py identity_list.py planner.py deploy_throughput.py kvm_deploy_overhead.py storage_copy.py; do
  [ -f "$script" ] || continue
  echo "=== $script ==="
  PYTHONPATH=.. $PY "$script" || echo "bench: $script failed"
done

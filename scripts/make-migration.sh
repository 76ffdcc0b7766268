#!/usr/bin/env bash
# Writes a new Alembic revision from the difference between the models and the migrations so far.
# Usage: scripts/make-migration.sh "what changed"
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PY=${PY:-.venv/bin/python}
$PY - "$tmp/m.db" "$1" <<'PYEOF'
import sys
from alembic import command
from core.db import alembic_config
url = f"sqlite:///{sys.argv[1]}"
cfg = alembic_config(url)
command.upgrade(cfg, "head")
command.revision(cfg, message=sys.argv[2], autogenerate=True)
PYEOF

"""Small helpers the storage_nfs tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def qemu_io(locator: str, command: str, fmt: str = "qcow2") -> subprocess.CompletedProcess:
    """Run one qemu-io command on an image (``write -P 0xab 0 64k``, ``read -P 0xab 0 64k``);
    raises ``CalledProcessError`` when it fails (qemu-io's read -P fails on a mismatch)."""
    done = subprocess.run(["qemu-io", "-f", fmt, "-c", command, locator], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0 or "Pattern verification failed" in done.stdout:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done


def image_info(locator: str) -> dict:
    done = subprocess.run(["qemu-img", "info", "--output=json", locator], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout)


def leftovers(directory: Path) -> list[str]:
    """Temporary and probe files anywhere under ``directory`` (none may survive an operation)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if ".part-" in p.name or p.name.startswith(".strato-probe-"))

"""Kernel NFS mounts: detect whether this kernel can mount NFS, mount, unmount.

Detection reads ``/proc/filesystems`` (``nfs``/``nfs4`` appear when the client is
built in or loaded) and, failing that, looks for a loadable ``nfs`` module for
the running kernel; mounting also needs ``mount.nfs`` (Debian's nfs-common) and
root. ``unavailable_reason()`` returns None or the reason in words, which the
driver reports in pool details and the tests print when they skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MOUNT_TIMEOUT = 60


class MountError(Exception):
    """mount/umount failed; the message carries the command's own output."""


def unavailable_reason() -> str | None:
    try:
        filesystems = Path("/proc/filesystems").read_text().split()
    except OSError as exc:
        return f"cannot read /proc/filesystems: {exc}"
    release = os.uname().release
    module_dir = Path("/lib/modules") / release / "kernel" / "fs" / "nfs"
    if "nfs" not in filesystems and "nfs4" not in filesystems and not module_dir.is_dir():
        return (f"this kernel ({release}) has no NFS client: /proc/filesystems lists no nfs "
                f"and {module_dir} does not exist")
    if not shutil.which("mount.nfs"):
        return "mount.nfs not found; install Debian's nfs-common"
    if os.geteuid() != 0:
        return "mounting NFS needs root"
    return None


def is_mounted(mountpoint: str) -> bool:
    """True when ``mountpoint`` is itself a mount point (listed in /proc/self/mountinfo)."""
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            fields = line.split()
            # field 5 is the mount point, with spaces etc. octal-escaped
            if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == target:
                return True
    return False


def mount(server: str, export: str, mountpoint: str, options: str = "") -> None:
    """Mount ``server:export`` on ``mountpoint`` (which must exist). Raises ``MountError``."""
    host = f"[{server}]" if ":" in server else server
    command = ["mount", "-t", "nfs"] + (["-o", options] if options else []) + [f"{host}:{export}", mountpoint]
    _run(command)


def umount(mountpoint: str) -> None:
    """Unmount; raises ``MountError`` (for instance when files on it are still open)."""
    _run(["umount", mountpoint])


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=MOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise MountError(f"{' '.join(command)}: no answer within {MOUNT_TIMEOUT} s") from None
    except OSError as exc:
        raise MountError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise MountError(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()}")

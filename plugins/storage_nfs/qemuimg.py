"""qemu-img, run as a subprocess, on local paths or ``nfs://`` URLs alike.

Image "locators" are what QEMU opens: an absolute file path, or
``nfs://server/export/file`` through QEMU's nfs block driver (Debian's
``qemu-block-extra``, built on libnfs, NFSv3). Every failure raises
``QemuImgError`` carrying qemu-img's own message; a run that outlives its
timeout is killed and reported the same way. Nothing here deletes files:
callers own cleanup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

#: seconds; metadata calls are quick, data copies are bounded by the caller's timeout
INFO_TIMEOUT = 120

#: CloudStack's format names -> qemu's
QEMU_FORMATS = {"QCOW2": "qcow2", "RAW": "raw", "VHD": "vpc", "VHDX": "vhdx", "VMDK": "vmdk"}


class QemuImgError(Exception):
    """qemu-img failed; ``str()`` is its message (stderr), prefixed with what was asked."""


@dataclass
class ImageInfo:
    format: str
    virtual_size: int
    actual_size: int | None
    backing_file: str | None
    #: qcow2 external data file, which a template must not have either
    data_file: str | None
    raw: dict[str, Any]


class QemuImg:
    """One qemu-img binary. ``binary`` is a name on PATH or a path."""

    def __init__(self, binary: str = "qemu-img"):
        self.binary = binary

    def unavailable_reason(self, need_nfs: bool = False) -> str | None:
        """None when qemu-img runs (and, with ``need_nfs``, lists the nfs block driver)."""
        if not shutil.which(self.binary):
            return f"{self.binary} not found; install Debian's qemu-utils"
        if need_nfs:
            try:
                out = self._run(["--help"], INFO_TIMEOUT, "qemu-img --help", ok_codes=(0, 1))
            except QemuImgError as exc:
                return str(exc)
            formats = next((line for line in out.splitlines() if line.startswith("Supported formats:")), "")
            if " nfs" not in formats:
                return "qemu-img has no nfs block driver; install Debian's qemu-block-extra"
        return None

    def _run(self, args: list[str], timeout: float, what: str, ok_codes=(0,)) -> str:
        try:
            done = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise QemuImgError(f"{what}: qemu-img did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise QemuImgError(f"{what}: cannot run {self.binary}: {exc}") from exc
        if done.returncode not in ok_codes:
            message = done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
            raise QemuImgError(f"{what}: {message}")
        return done.stdout

    def info(self, locator: str, fmt: str | None = None) -> ImageInfo:
        """Read the image header. Without ``fmt`` qemu probes the format (any file that
        is no known format probes as ``raw``)."""
        args = ["info", "--output=json"] + (["-f", fmt] if fmt else []) + [locator]
        raw = json.loads(self._run(args, INFO_TIMEOUT, f"qemu-img info {locator}"))
        specific = (raw.get("format-specific") or {}).get("data") or {}
        return ImageInfo(format=raw["format"], virtual_size=int(raw["virtual-size"]),
                         actual_size=raw.get("actual-size"), backing_file=raw.get("backing-filename"),
                         data_file=specific.get("data-file"), raw=raw)

    def create(self, locator: str, fmt: str, size: int, backing: str | None = None,
               backing_fmt: str | None = None) -> None:
        """Create an image; with ``backing`` an overlay (relative backing names are
        resolved from the overlay's directory, as QEMU does)."""
        args = ["create", "-q", "-f", fmt]
        if backing:
            args += ["-b", backing, "-F", backing_fmt or "qcow2"]
        args += [locator, str(int(size))]
        self._run(args, INFO_TIMEOUT, f"qemu-img create {locator}")

    def resize(self, locator: str, fmt: str, size: int) -> None:
        self._run(["resize", "-q", "-f", fmt, locator, str(int(size))], INFO_TIMEOUT,
                  f"qemu-img resize {locator}")

    def convert(self, source: str, source_fmt: str, target: str, target_fmt: str, timeout: float,
                snapshot: str | None = None, compress: bool = False, force_share: bool = False) -> None:
        """Copy ``source`` (its whole backing chain flattened) into a new ``target``.
        ``snapshot`` reads an internal qcow2 snapshot instead of the active layer;
        ``force_share`` (-U) reads an image a running VM holds open."""
        args = ["convert", "-q", "-f", source_fmt, "-O", target_fmt]
        if snapshot:
            args += ["-l", f"snapshot.name={snapshot}"]
        if compress:
            args.append("-c")
        if force_share:
            args.append("-U")
        args += [source, target]
        self._run(args, timeout, f"qemu-img convert {source} -> {target}")

    def snapshot(self, locator: str, action: str, name: str | None = None) -> str:
        """Internal qcow2 snapshots: ``action`` is ``-c`` (create), ``-a`` (apply),
        ``-d`` (delete) with ``name``, or ``-l`` (list; returns qemu-img's table)."""
        args = ["snapshot", action] + ([name] if name else []) + [locator]
        return self._run(args, INFO_TIMEOUT, f"qemu-img snapshot {action} {locator}")

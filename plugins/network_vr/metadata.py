"""User data and instance metadata for guests, as CloudStack's router serves them:
``http://<router>/latest/user-data`` and ``/latest/meta-data/<item>``, answering each guest
by its source address.

The HTTP server is ``metadata_server.py``, run as its own process in the router's
namespace; it re-reads the data file when the file changes, so a VM starting changes no
process. ``apply`` writes the data file and keeps that process running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from . import system
from .spec import RouterSpec

SERVER = Path(__file__).with_name("metadata_server.py")
MARKER = SERVER.name
PORT = 80


def data(spec: RouterSpec) -> str:
    """{guest ip: {"user-data": base64 or null, "meta-data": {...}}} (pure)."""
    entries = {}
    for nic in spec.nics:
        if not nic.ip:
            continue
        entries[nic.ip] = {
            "user-data": nic.user_data,
            "meta-data": {"instance-id": nic.vm, "vm-id": nic.vm, "local-hostname": nic.hostname,
                          "local-ipv4": nic.ip, "public-ipv4": nic.public_ip or "",
                          "public-hostname": nic.public_ip or "", "service-offering": "",
                          "availability-zone": "", "mac": nic.mac},
        }
    return json.dumps(entries, sort_keys=True, indent=1) + "\n"


def apply(spec: RouterSpec, state: Path, namespace: str) -> None:
    pidfile = state / "metadata.pid"
    if not spec.has("UserData"):
        stop(state)
        return
    system.write_if_changed(state / "metadata.json", data(spec))
    if system.read_pid(pidfile, MARKER) is not None:
        return
    log = open(state / "metadata.log", "ab")
    try:
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-I", str(SERVER), str(state / "metadata.json"),
             spec.guest_ip, str(PORT), str(pidfile)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    finally:
        log.close()
    try:
        system.wait_for_pid(pidfile, MARKER, timeout=10)
    except system.ResourceUnavailableError:
        process.kill()
        process.wait()
        tail = (state / "metadata.log").read_text(errors="replace")[-500:]
        raise system.ResourceUnavailableError(f"the metadata server did not start: {tail}") from None


def stop(state: Path) -> None:
    system.stop_pidfile(state / "metadata.pid", MARKER)

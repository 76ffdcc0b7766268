"""A second libvirtd on this machine: host B for live-migration tests.

It runs in its own mount and UTS namespaces (``unshare``), where /etc/libvirt,
/run/libvirt, /var/lib/libvirt and /var/cache/libvirt are directories of its own: its
domain definitions, state files, QEMU monitor sockets and capability cache never meet
the system libvirtd's (a migrating domain exists under the same name on both daemons at
once). It has its own virtlogd, host name and host UUID (libvirt refuses a migration
between hosts of one UUID), no cgroups (the system libvirtd's cgroup names
``qemu-<id>-<name>`` could collide), and VNC and migration port ranges apart from the
system daemon's defaults. Clients reach it on a unix socket outside the namespace:
``qemu+unix:///system?socket=<dir>/sock/libvirt-sock``. QEMU runs as the same user as
under the system daemon, and sees the same files (only libvirt's directories differ).

``close()`` destroys its domains, stops its daemons (by pid; the namespace goes with
its last process) and removes its directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PRIVATE_DIRS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
                "cache": "/var/cache/libvirt"}


class SecondLibvirtd:
    def __init__(self, libvirt_module, timeout: float = 60):
        self.libvirt = libvirt_module
        self.dir = Path(tempfile.mkdtemp(prefix="strato-libvirt-b-", dir="/var/tmp"))
        self.dir.chmod(0o755)
        self.hostname = f"strato-kvm-b-{os.getpid()}"
        self.uri = f"qemu+unix:///system?socket={self.dir}/sock/libvirt-sock"
        try:
            self._write_config()
            self._start(timeout)
        except BaseException:
            self.close()
            raise

    def _write_config(self) -> None:
        for name in (*PRIVATE_DIRS, "sock", "log", "etc/qemu", "lib/qemu", "run/qemu", "cache/qemu"):
            (self.dir / name).mkdir(exist_ok=True)
        (self.dir / "etc/libvirtd.conf").write_text(
            f'unix_sock_dir = "{self.dir}/sock"\n'
            'unix_sock_rw_perms = "0700"\n'
            'auth_unix_rw = "none"\n'
            'auth_unix_ro = "none"\n'
            f'host_uuid = "{uuid.uuid4()}"\n'
            f'log_outputs = "3:file:{self.dir}/log/libvirtd.log"\n')
        (self.dir / "etc/qemu.conf").write_text(
            "cgroup_controllers = [ ]\n"
            "remote_display_port_min = 6900\nremote_display_port_max = 6999\n"
            "migration_port_min = 49300\nmigration_port_max = 49399\n")
        (self.dir / "etc/virtlogd.conf").write_text(f'log_outputs = "3:file:{self.dir}/log/virtlogd.log"\n')
        # the system daemon's QEMU capabilities: saves the daemon a probe of several seconds
        shutil.copytree("/var/cache/libvirt/qemu/capabilities", self.dir / "cache/qemu/capabilities",
                        dirs_exist_ok=True)

    def _start(self, timeout: float) -> None:
        binds = "".join(f"mount --bind {self.dir / mine} {theirs} && " for mine, theirs in PRIVATE_DIRS.items())
        script = (f"hostname {self.hostname} && {binds}"
                  f"virtlogd -d -p {self.dir}/virtlogd.pid && "
                  f"libvirtd -d -f /etc/libvirt/libvirtd.conf -p {self.dir}/libvirtd.pid")
        done = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-ec", script],
                              capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"the second libvirtd did not start: {done.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.libvirt.open(self.uri).close()
                return
            except self.libvirt.libvirtError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the second libvirtd did not answer within {timeout:.0f} s: {exc}") from exc
                time.sleep(0.2)

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.dir / f"{name}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def close(self) -> None:
        pid = self._pid("libvirtd")
        if pid is not None:
            try:
                conn = self.libvirt.open(self.uri)
            except self.libvirt.libvirtError:
                conn = None  # the daemon is gone already; nothing of it to clean
            if conn is not None:
                flags = (self.libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                         | self.libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
                for domain in conn.listAllDomains(0):
                    if domain.isActive():
                        domain.destroy()
                    if domain.isPersistent():
                        domain.undefineFlags(flags)
                conn.close()
        for name in ("libvirtd", "virtlogd"):
            pid = self._pid(name)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir)


def _alive(pid: int) -> bool:
    # a daemon is not our child, so an exited one may stay a zombie until init reaps it
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

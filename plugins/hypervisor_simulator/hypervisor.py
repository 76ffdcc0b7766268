"""Simulated hypervisor hosts, like CloudStack's simulator.

A host is added by URL: ``http://sim/<cluster>/<host>`` (any host part), with
optional query settings ``cpus`` (default 8), ``mhz`` (2000), ``ram`` (in MiB,
default 16384). Faults are injected per host with ``configureSimulator`` or
``SimulatorHypervisor.inject``: ``fail`` the next N calls of an action, add a
``delay`` to it, or take the host down.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from core import (
    HostInfo,
    HostRef,
    HypervisorDriver,
    InvalidParameterError,
    PowerState,
    ResourceUnavailableError,
    StratoError,
    VmSpec,
    VmStats,
    hookimpl,
)
from core.errors import ResourceInUseError

from .state import SimulatorState

ACTIONS = ("connect", "ping", "start", "stop", "reboot", "destroy", "migrate", "snapshot")

# VM snapshots are bookkeeping: a name per VM, and whether the VM ran (the memory was taken)
SNAPSHOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_vm_snapshot (
    vm_name TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL, with_memory INTEGER NOT NULL,
    PRIMARY KEY (vm_name, name));
"""


class SimulatedFailure(StratoError):
    """An injected fault; reported like a hypervisor's own error (534)."""

    errorcode = 534
    cserrorcode = 4380


def parse_host_url(url: str) -> tuple[str, dict[str, int]]:
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https", "sim") or not parsed.path.strip("/"):
        raise InvalidParameterError(
            f"simulator host URL {url!r} must look like http://sim/<cluster>/<host>[?cpus=8&mhz=2000&ram=16384]")
    query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    try:
        spec = {"cpus": int(query.get("cpus", 8)), "mhz": int(query.get("mhz", 2000)),
                "ram": int(query.get("ram", 16384))}
    except ValueError:
        raise InvalidParameterError(f"simulator host URL {url!r}: cpus, mhz and ram must be numbers") from None
    if min(spec.values()) <= 0:
        raise InvalidParameterError(f"simulator host URL {url!r}: cpus, mhz and ram must be positive")
    return f"{parsed.netloc}{parsed.path}".rstrip("/"), spec


class SimulatorHypervisor(HypervisorDriver):
    name = "simulator"
    hypervisor_type = "Simulator"
    url_schemes = ("http", "https", "sim")
    capabilities = {"live_migration": True, "volume_hotplug": True, "vm_snapshots": True, "stats": True}

    def __init__(self, config=None):
        super().__init__(config)
        self._use_state(SimulatorState(self.config.get("state_file", ":memory:")))

    @hookimpl
    def strato_configure(self, settings):
        # The shared state lives with the cloud's data, so every process of this cloud sees it.
        if "state_file" not in self.config:
            self._use_state(SimulatorState(Path(settings.data_dir) / "simulator.sqlite"))

    def _use_state(self, state: SimulatorState) -> None:
        self.state = state
        with state.cursor() as cur:
            cur.execute(SNAPSHOT_SCHEMA)

    # -- fault injection -----------------------------------------------------

    def inject(self, host_url: str, action: str, *, count: int = 1, delay: float = 0.0, fail: bool = True,
               message: str | None = None) -> None:
        """Make the next ``count`` calls of ``action`` on the host slower by ``delay`` seconds
        and, with ``fail``, fail with ``message``."""
        if action not in ACTIONS:
            raise InvalidParameterError(f"unknown simulator action {action!r}; one of {', '.join(ACTIONS)}")
        if count < 1 or delay < 0:
            raise InvalidParameterError("a simulator fault needs count >= 1 and delay >= 0")
        with self.state.cursor() as cur:
            # message NULL marks a delay-only fault
            cur.execute("INSERT INTO sim_fault (host_url, action, remaining, delay, message) VALUES (?,?,?,?,?)",
                        (host_url, action, count, delay, (message or "") if fail else None))

    def set_host_up(self, host_url: str, up: bool) -> None:
        with self.state.cursor() as cur:
            cur.execute("INSERT INTO sim_host (url, up) VALUES (?, ?) ON CONFLICT(url) DO UPDATE SET up=excluded.up",
                        (host_url, int(up)))

    def clear_faults(self, host_url: str | None = None) -> None:
        with self.state.cursor() as cur:
            if host_url:
                cur.execute("DELETE FROM sim_fault WHERE host_url = ?", (host_url,))
            else:
                cur.execute("DELETE FROM sim_fault")

    def _is_up(self, host_url: str) -> bool:
        """False once the host was taken down (a host never configured is up)."""
        with self.state.cursor() as cur:
            row = cur.execute("SELECT up FROM sim_host WHERE url = ?", (host_url,)).fetchone()
        return row is None or bool(row[0])

    def _check(self, host_url: str, action: str) -> None:
        """Apply injected faults for one call of ``action``; raise if the host is down or a failure is due."""
        with self.state.cursor() as cur:
            row = cur.execute("SELECT up FROM sim_host WHERE url = ?", (host_url,)).fetchone()
            fault = cur.execute("SELECT id, remaining, delay, message FROM sim_fault WHERE host_url = ? AND "
                                "action = ? ORDER BY id LIMIT 1", (host_url, action)).fetchone()
            if fault:
                if fault[1] <= 1:
                    cur.execute("DELETE FROM sim_fault WHERE id = ?", (fault[0],))
                else:
                    cur.execute("UPDATE sim_fault SET remaining = remaining - 1 WHERE id = ?", (fault[0],))
        if fault and fault[2]:
            time.sleep(fault[2])
        if row is not None and not row[0] and action != "connect":
            raise ResourceUnavailableError(f"simulated host {host_url} is down")
        if fault and fault[3] is not None:
            raise SimulatedFailure(fault[3] or f"simulated failure of {action} on {host_url}")

    # -- the contract --------------------------------------------------------

    def connect_host(self, url, username=None, password=None) -> HostInfo:
        key, spec = parse_host_url(url)
        self._check(key, "connect")
        with self.state.cursor() as cur:
            row = cur.execute("SELECT up FROM sim_host WHERE url = ?", (key,)).fetchone()
            if row is not None and not row[0]:
                raise ResourceUnavailableError(f"simulated host {key} is down")
            cur.execute("INSERT OR IGNORE INTO sim_host (url, up) VALUES (?, 1)", (key,))
        return HostInfo(name=key.rsplit("/", 1)[-1], cpu_sockets=1, cpu_cores=spec["cpus"],
                        cpu_speed_mhz=spec["mhz"], memory_bytes=spec["ram"] * 1024 * 1024,
                        hypervisor_version="simulator-1.0", details={"sim_key": key})

    def ping_host(self, host: HostRef) -> bool:
        try:
            self._check(host.details["sim_key"], "ping")
        except StratoError:
            return False
        return True

    def disconnect_host(self, host: HostRef) -> None:
        with self.state.cursor() as cur:
            cur.execute("DELETE FROM sim_host WHERE url = ?", (host.details["sim_key"],))

    def start_vm(self, host: HostRef, vm: VmSpec) -> dict:
        key = host.details["sim_key"]
        self._check(key, "start")
        with self.state.cursor() as cur:
            cur.execute("INSERT INTO sim_vm (name, host_url, power) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE "
                        "SET host_url = excluded.host_url, power = excluded.power", (vm.instance_name, key, "on"))
        return {"console": f"sim://{key}/{vm.instance_name}"}

    def stop_vm(self, host: HostRef, vm: VmSpec, force: bool = False) -> None:
        self._check(host.details["sim_key"], "stop")
        with self.state.cursor() as cur:
            cur.execute("UPDATE sim_vm SET power = 'off' WHERE name = ?", (vm.instance_name,))

    def reboot_vm(self, host: HostRef, vm: VmSpec) -> None:
        key = host.details["sim_key"]
        self._check(key, "reboot")
        with self.state.cursor() as cur:
            row = cur.execute("SELECT power FROM sim_vm WHERE name = ? AND host_url = ?",
                              (vm.instance_name, key)).fetchone()
        if not row or row[0] != "on":
            raise ResourceUnavailableError(f"VM {vm.instance_name} is not running on {key}")

    def destroy_vm(self, host: HostRef, vm: VmSpec) -> None:
        self._check(host.details["sim_key"], "destroy")
        with self.state.cursor() as cur:
            cur.execute("DELETE FROM sim_vm WHERE name = ?", (vm.instance_name,))
            cur.execute("DELETE FROM sim_vm_snapshot WHERE vm_name = ?", (vm.instance_name,))

    def power_states(self, host: HostRef) -> dict[str, PowerState]:
        key = host.details["sim_key"]
        self._check(key, "ping")
        with self.state.cursor() as cur:
            rows = cur.execute("SELECT name, power FROM sim_vm WHERE host_url = ?", (key,)).fetchall()
        return {name: PowerState.ON if power == "on" else PowerState.OFF for name, power in rows}

    def vm_stats(self, host: HostRef, vm: VmSpec) -> VmStats:
        return VmStats(cpu_used_percent=1.0, memory_kbs=vm.memory_mb * 1024)

    def migrate_vm(self, source: HostRef, destination: HostRef, vm: VmSpec) -> dict:
        key = destination.details["sim_key"]
        self._check(source.details["sim_key"], "migrate")
        if not self._is_up(key):  # as a real driver failing to reach the destination's hypervisor
            raise ResourceUnavailableError(f"simulated host {key} is down: cannot migrate {vm.instance_name} to it")
        with self.state.cursor() as cur:
            cur.execute("UPDATE sim_vm SET host_url = ? WHERE name = ?", (key, vm.instance_name))
        return {"console": f"sim://{key}/{vm.instance_name}"}  # as start_vm's, now on the destination

    def attach_volume(self, host, vm, volume) -> None:
        self._check(host.details["sim_key"], "start")

    def detach_volume(self, host, vm, volume) -> None:
        self._check(host.details["sim_key"], "stop")

    def create_vm_snapshot(self, host: HostRef, vm: VmSpec, name: str, description: str = "") -> None:
        key = host.details["sim_key"]
        self._check(key, "snapshot")
        with self.state.cursor() as cur:
            power = self._vm_power(cur, key, vm)
            if cur.execute("SELECT 1 FROM sim_vm_snapshot WHERE vm_name = ? AND name = ?",
                           (vm.instance_name, name)).fetchone():
                raise ResourceInUseError(f"VM {vm.instance_name} already has a snapshot named {name}")
            cur.execute("INSERT INTO sim_vm_snapshot (vm_name, name, description, with_memory) VALUES (?, ?, ?, ?)",
                        (vm.instance_name, name, description, int(power == "on")))

    def revert_vm_snapshot(self, host: HostRef, vm: VmSpec, name: str) -> None:
        key = host.details["sim_key"]
        self._check(key, "snapshot")
        with self.state.cursor() as cur:
            self._vm_power(cur, key, vm)
            row = cur.execute("SELECT with_memory FROM sim_vm_snapshot WHERE vm_name = ? AND name = ?",
                              (vm.instance_name, name)).fetchone()
            if row is None:
                raise InvalidParameterError(f"VM {vm.instance_name} has no snapshot named {name}")
            cur.execute("UPDATE sim_vm SET power = ? WHERE name = ?", ("on" if row[0] else "off", vm.instance_name))

    def delete_vm_snapshot(self, host: HostRef, vm: VmSpec, name: str) -> None:
        self._check(host.details["sim_key"], "snapshot")
        with self.state.cursor() as cur:
            cur.execute("DELETE FROM sim_vm_snapshot WHERE vm_name = ? AND name = ?", (vm.instance_name, name))

    def list_vm_snapshots(self, host: HostRef, vm: VmSpec) -> list[str]:
        key = host.details["sim_key"]
        self._check(key, "ping")
        with self.state.cursor() as cur:
            self._vm_power(cur, key, vm)
            rows = cur.execute("SELECT name FROM sim_vm_snapshot WHERE vm_name = ? ORDER BY rowid",
                               (vm.instance_name,)).fetchall()
        return [name for (name,) in rows]

    @staticmethod
    def _vm_power(cur, key: str, vm: VmSpec) -> str:
        row = cur.execute("SELECT power FROM sim_vm WHERE name = ? AND host_url = ?",
                          (vm.instance_name, key)).fetchone()
        if row is None:
            raise InvalidParameterError(f"VM {vm.instance_name} is not on simulated host {key}")
        return row[0]

    def place_unknown_vm(self, host_url: str, name: str) -> None:
        """Put a VM on a simulated host behind Strato's back (to test power-state reports)."""
        with self.state.cursor() as cur:
            cur.execute("INSERT OR REPLACE INTO sim_vm (name, host_url, power) VALUES (?, ?, 'on')", (name, host_url))

"""``LibvirtDriver``: KVM (and QEMU software emulation) hosts through libvirt.

Entry point ``kvm`` in ``strato.hypervisors``. Settings, from ``[plugin.kvm]`` in
strato.toml (unknown keys stop start-up with ``ConfigurationError``):

- ``domain_type`` = "auto" (default) | "kvm" | "qemu". "auto" picks kvm only where the
  host offers it and its CPU has vmx/svm, else qemu (see ``host.choose_domain_type``);
  decided once per host connection.
- ``console_log_dir`` (default ``/var/log/libvirt/qemu``): where each VM's serial console
  is logged, as ``<instance name>.console.log``, on the host (virtlogd writes it).
  Created when the host is this machine.
- ``shutdown_timeout`` (seconds, default 60): how long a guest has to power off after an
  ACPI shutdown, or to reboot after an ACPI reboot, before it is forced.
- ``nic_fallback`` = "user" (default) | "none" | "error": what a NIC the network plugin
  left without a bridge becomes (``config.interface_element``).
- ``detach_timeout`` (seconds, default 30): how long a guest has to release a disk.
- ``stats_interval`` (seconds, default 1): the CPU sampling window of a first
  ``vm_stats`` call for a VM; later calls measure since the previous call.
- ``shared_filesystems`` (list of absolute directories, default none): directories the
  admin declares shared by every host (the same files at the same path, as libvirt 9.10's
  qemu.conf setting of that name). Disk files below them count as shared storage for live
  migration, which libvirt otherwise refuses for files on a local file system.

Domains are named by the instance name and carry the VM's uuid; the driver finds its
VMs by uuid, so a foreign domain with the same name is never touched (defining ours
then fails with ``ResourceInUseError``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Any, ClassVar

from core.drivers import HostInfo, HostRef, HypervisorDriver, PowerState, VmSpec, VmStats, VolumeSpec
from core.errors import (
    ConfigurationError,
    InternalError,
    InvalidParameterError,
    ResourceInUseError,
    StratoError,
    UnsupportedError,
)

from . import config, host
from .errors import libvirt, translate
from .guest import CpuSample, Guest

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class KvmSettings:
    domain_type: str = "auto"
    console_log_dir: str = "/var/log/libvirt/qemu"
    shutdown_timeout: float = 60.0
    nic_fallback: str = "user"
    detach_timeout: float = 30.0
    stats_interval: float = 1.0
    shared_filesystems: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, raw: dict[str, Any]) -> KvmSettings:
        """Validate ``[plugin.kvm]``. Raises ``ConfigurationError`` naming the bad key."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigurationError(f"[plugin.kvm]: unknown setting(s) {', '.join(unknown)} "
                                     f"(known: {', '.join(known)})")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(known[key].default, tuple):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.startswith("/")
                                                                   for v in value):
                    raise ConfigurationError(f"[plugin.kvm] {key} must be a list of absolute paths, not {value!r}")
                values[key] = tuple(os.path.normpath(v) for v in value)
            elif isinstance(known[key].default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ConfigurationError(f"[plugin.kvm] {key} must be a number of seconds >= 0, not {value!r}")
                values[key] = float(value)
            elif not isinstance(value, str):
                raise ConfigurationError(f"[plugin.kvm] {key} must be a string, not {value!r}")
            else:
                values[key] = value
        settings = cls(**values)
        if settings.domain_type not in ("auto", "kvm", "qemu"):
            raise ConfigurationError(f"[plugin.kvm] domain_type must be auto, kvm or qemu, not {settings.domain_type!r}")
        if settings.nic_fallback not in config.NIC_FALLBACKS:
            raise ConfigurationError(f"[plugin.kvm] nic_fallback must be one of {', '.join(config.NIC_FALLBACKS)}, "
                                     f"not {settings.nic_fallback!r}")
        if not settings.console_log_dir.startswith("/"):
            raise ConfigurationError(f"[plugin.kvm] console_log_dir must be absolute, not {settings.console_log_dir!r}")
        return settings


class LibvirtDriver(HypervisorDriver):
    """KVM hosts through libvirt (see the module docstring for settings and URLs)."""

    name: ClassVar[str] = "kvm"
    hypervisor_type: ClassVar[str] = "KVM"
    url_schemes: ClassVar[tuple[str, ...]] = host.URL_SCHEMES
    capabilities: ClassVar[dict[str, Any]] = {
        # non-peer-to-peer, this process drives both libvirtds; refused (432) between hosts
        # whose libvirt cannot migrate (the test driver) and for disks not on shared storage
        "live_migration": True,
        "volume_hotplug": True,
        # internal qcow2 snapshots of every disk, with the memory of a running guest
        "vm_snapshots": True,
        "stats": True,
    }

    def __init__(self, config: dict[str, Any] | None = None):
        super().__init__(config)
        self.settings = KvmSettings.from_config(self.config)
        self._connections = host.Connections()
        self._domain_types: dict[str, str] = {}
        self._cpu_samples: dict[str, CpuSample] = {}
        self._lock = threading.Lock()

    # -- hosts -----------------------------------------------------------------------

    def connect_host(self, url: str, username: str | None, password: str | None) -> HostInfo:
        uri = host.libvirt_uri(url, username)
        connection = host.Connection(uri, username, password)
        try:
            conn = connection.get()
            try:
                info = host.host_info(conn, uri, self.settings.domain_type)
            except libvirt.libvirtError as exc:
                raise translate(exc, f"reading what host {uri} has") from exc
        except StratoError:
            connection.close()
            raise
        if password and uri.split("://", 1)[0] in ("qemu+tcp", "qemu+tls"):
            # SASL needs them again after a restart of the management server
            info.details.update(libvirt_username=username, libvirt_password=password)
        self._connections.replace(connection)
        with self._lock:
            self._domain_types[uri] = info.details["domain_type"]
        return info

    def ping_host(self, host_ref: HostRef) -> bool:
        try:
            connection = self._connection(host_ref)
        except StratoError as exc:
            log.info("ping of host %s: %s", host_ref.name, exc)
            return False
        for attempt in (1, 2):
            try:
                connection.get().getLibVersion()
                return True
            except libvirt.libvirtError as exc:
                # the connection looked alive but was not: open a new one and ask once more
                log.info("ping of %s failed (attempt %d): %s", connection.uri, attempt, exc)
                connection.reset()
            except StratoError as exc:
                log.info("ping of %s failed: %s", connection.uri, exc)
                return False
        return False

    def disconnect_host(self, host_ref: HostRef) -> None:
        self._connections.close(self._uri(host_ref))

    def close(self) -> None:
        self._connections.close_all()

    # -- VMs -------------------------------------------------------------------------

    def start_vm(self, host_ref: HostRef, vm: VmSpec) -> dict[str, Any]:
        """Define the domain from ``vm`` (redefining a stopped one, so changes to the spec
        take effect) and power it on; a running one is left as it is. On any failure the
        domain is powered off and undefined and its console log removed."""
        conn = self._conn(host_ref)
        guest = Guest.lookup(conn, vm.uuid)
        if guest is not None and guest.is_active():
            return self._vm_details(host_ref, guest, vm)
        try:
            xml = config.domain_xml(vm, domain_type=self._domain_type(host_ref, conn),
                                    console_log=self._console_log(vm), nic_fallback=self.settings.nic_fallback)
            if host.is_local(self._uri(host_ref)):
                try:
                    os.makedirs(self.settings.console_log_dir, exist_ok=True)
                except OSError as exc:
                    raise InternalError(f"cannot make the console log directory "
                                        f"{self.settings.console_log_dir}: {exc}") from exc
            try:
                guest = Guest.define(conn, xml)
            except ResourceInUseError as exc:
                if "already exists" not in exc.message:
                    raise
                # usually a second cloud (another demo, another data dir) on the same libvirtd
                raise ResourceInUseError(
                    f"{exc.message}: another cloud on this host gives its VMs the same instance names; "
                    "give each cloud its own with the global setting instance.name") from exc
            guest.create()
            return self._vm_details(host_ref, guest, vm)
        except Exception as exc:
            self._remove_after_failure(host_ref, conn, vm, exc)
            raise

    def stop_vm(self, host_ref: HostRef, vm: VmSpec, force: bool = False) -> None:
        guest = Guest.lookup(self._conn(host_ref), vm.uuid)
        if guest is None:
            return
        if force:
            guest.destroy()
        else:
            guest.shutdown(self.settings.shutdown_timeout)
        self._forget_sample(vm)

    def reboot_vm(self, host_ref: HostRef, vm: VmSpec) -> str:
        """Reboot the running VM; a guest that ignores the ACPI reboot is reset after
        ``shutdown_timeout``. Returns how ("acpi", "reset", "immediate")."""
        conn = self._conn(host_ref)
        guest = self._guest(host_ref, conn, vm)
        try:
            # QEMU's reboot is the guest's doing (ACPI); other libvirt drivers reboot at once
            guest_driven = conn.getType() == "QEMU"
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reading the hypervisor type of {self._uri(host_ref)}") from exc
        return guest.reboot(self.settings.shutdown_timeout, guest_driven)

    def destroy_vm(self, host_ref: HostRef, vm: VmSpec) -> None:
        """Power off, undefine (snapshot metadata too) and remove the console log on a
        local host. The volumes stay. Idempotent."""
        guest = Guest.lookup(self._conn(host_ref), vm.uuid)
        if guest is not None:
            guest.destroy()
            guest.undefine()
        self._forget_sample(vm)
        self._remove_console_log(host_ref, vm)

    def power_states(self, host_ref: HostRef) -> dict[str, PowerState]:
        conn = self._conn(host_ref)
        try:
            domains = conn.listAllDomains(0)
        except libvirt.libvirtError as exc:
            raise translate(exc, f"listing the domains of {self._uri(host_ref)}") from exc
        states: dict[str, PowerState] = {}
        for domain in domains:
            guest = Guest(domain)
            try:
                states[guest.name] = guest.power_state()
            except StratoError:
                # a domain undefined between the listing and now is simply not there
                if Guest.lookup(conn, domain.UUIDString()) is not None:
                    raise
        return states

    def vm_stats(self, host_ref: HostRef, vm: VmSpec) -> VmStats:
        guest = self._guest(host_ref, self._conn(host_ref), vm)
        with self._lock:
            previous = self._cpu_samples.get(vm.uuid)
        stats, sample = guest.stats(previous, self.settings.stats_interval)
        with self._lock:
            self._cpu_samples[vm.uuid] = sample
        return stats

    def migrate_vm(self, source: HostRef, destination: HostRef, vm: VmSpec) -> dict[str, Any]:
        """Live-migrate, non-peer-to-peer: this process holds both connections and libvirt
        moves the domain, persistent on the destination and undefined on the source. On
        failure libvirt resumes it on the source. Returns the details ``start_vm`` returns,
        read on the destination (its VNC port there). The volumes must be shared storage: NFS
        disks (libnfs) are; disk files are when libvirt sees their file system as shared
        (kernel NFS, GFS2...) or they lie below a ``shared_filesystems`` directory."""
        src = self._conn(source)
        dst = self._conn(destination)
        what = f"migrating {vm.instance_name} from {source.name} to {destination.name}"
        guest = self._guest(source, src, vm)
        if not guest.is_active():
            raise InvalidParameterError(f"{vm.instance_name} is not running; only a running VM can be migrated")
        if source.details.get("host_uuid") and source.details.get("host_uuid") == destination.details.get("host_uuid"):
            raise InvalidParameterError(f"{what}: both are the same libvirt host ({source.details['host_uuid']})")
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
        if self._on_declared_shared_storage(vm):
            # libvirt < 9.10 cannot be told which local directories are shared; UNSAFE skips
            # only that check (network disks are safe for it anyway)
            flags |= libvirt.VIR_MIGRATE_UNSAFE
        try:
            moved = guest.domain.migrate(dst, flags, None, host.migration_uri(self._uri(source), self._uri(destination)),
                                         0)
        except libvirt.libvirtError as exc:
            error = translate(exc, what)
            if exc.get_error_code() == libvirt.VIR_ERR_MIGRATE_UNSAFE:
                error = UnsupportedError(f"{error.message}; if every host sees the same files there, declare the "
                                         "pool's directory in [plugin.kvm] shared_filesystems")
            raise error from exc
        self._forget_sample(vm)
        try:
            return self._vm_details(destination, Guest(moved), vm)
        except (StratoError, libvirt.libvirtError) as exc:
            # the VM has moved: a console address we cannot read must not undo that in the core
            log.warning("%s: done, but reading its details on %s failed: %s", what, destination.name, exc)
            return {}

    def attach_volume(self, host_ref: HostRef, vm: VmSpec, volume: VolumeSpec) -> None:
        """Add the volume to the VM's definition and, when running, to the guest."""
        guest = self._guest(host_ref, self._conn(host_ref), vm)
        guest.attach_disk(config.disk_xml(volume))

    def detach_volume(self, host_ref: HostRef, vm: VmSpec, volume: VolumeSpec) -> None:
        """Remove the volume from the VM (see ``Guest.detach_disk`` for a guest that holds on)."""
        guest = self._guest(host_ref, self._conn(host_ref), vm)
        guest.detach_disk(config.disk_target(volume.device_id), self.settings.detach_timeout)

    # -- VM snapshots (capability vm_snapshots) ----------------------------------------

    def create_vm_snapshot(self, host_ref: HostRef, vm: VmSpec, name: str, description: str = "") -> None:
        """An internal snapshot of every disk (and the memory when running)."""
        self._guest(host_ref, self._conn(host_ref), vm).create_snapshot(name, description)

    def revert_vm_snapshot(self, host_ref: HostRef, vm: VmSpec, name: str) -> None:
        self._guest(host_ref, self._conn(host_ref), vm).revert_snapshot(name)

    def delete_vm_snapshot(self, host_ref: HostRef, vm: VmSpec, name: str) -> None:
        """Idempotent."""
        self._guest(host_ref, self._conn(host_ref), vm).delete_snapshot(name)

    def list_vm_snapshots(self, host_ref: HostRef, vm: VmSpec) -> list[str]:
        return self._guest(host_ref, self._conn(host_ref), vm).snapshot_names()

    # -- private ---------------------------------------------------------------------

    def _uri(self, host_ref: HostRef) -> str:
        return host_ref.details.get("libvirt_uri") or host.libvirt_uri(host_ref.url)

    def _connection(self, host_ref: HostRef) -> host.Connection:
        details = host_ref.details or {}
        return self._connections.get(self._uri(host_ref), details.get("libvirt_username"),
                                     details.get("libvirt_password"))

    def _conn(self, host_ref: HostRef) -> libvirt.virConnect:
        return self._connection(host_ref).get()

    def _guest(self, host_ref: HostRef, conn: libvirt.virConnect, vm: VmSpec) -> Guest:
        guest = Guest.lookup(conn, vm.uuid)
        if guest is None:
            raise InvalidParameterError(f"VM {vm.instance_name} ({vm.uuid}) is not on host {host_ref.name}")
        return guest

    def _domain_type(self, host_ref: HostRef, conn: libvirt.virConnect) -> str:
        uri = self._uri(host_ref)
        with self._lock:
            known = self._domain_types.get(uri)
        if known:
            return known
        try:
            caps_xml = conn.getCapabilities()
            caps = host.HostCapabilities.parse(caps_xml)
            features = host.cpu_features(conn, caps_xml) if "kvm" in caps.domain_types else frozenset()
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reading the capabilities of {uri}") from exc
        chosen = host.choose_domain_type(self.settings.domain_type, caps.domain_types, features)
        with self._lock:
            self._domain_types[uri] = chosen
        return chosen

    def _console_log(self, vm: VmSpec) -> str:
        if "/" in vm.instance_name or vm.instance_name in ("", ".", ".."):
            raise InvalidParameterError(f"instance name {vm.instance_name!r} cannot name a file")
        return os.path.join(self.settings.console_log_dir, f"{vm.instance_name}.console.log")

    def _vm_details(self, host_ref: HostRef, guest: Guest, vm: VmSpec) -> dict[str, Any]:
        details: dict[str, Any] = {"console_log": self._console_log(vm),
                                   "domain_type": self._domain_type(host_ref, guest.domain.connect())}
        vnc = guest.vnc()
        if vnc is not None:
            details["vnc_address"], details["vnc_port"] = vnc
        return details

    def _remove_after_failure(self, host_ref: HostRef, conn: libvirt.virConnect, vm: VmSpec,
                              failure: BaseException) -> None:
        # A failed cleanup must not hide why the start failed: it is logged and noted on
        # the original error, which is what the caller gets.
        try:
            guest = Guest.lookup(conn, vm.uuid)
            if guest is not None:
                guest.destroy()
                guest.undefine()
            self._remove_console_log(host_ref, vm)
        except (StratoError, OSError) as exc:
            log.error("cleaning up %s after a failed start: %s", vm.instance_name, exc)
            failure.add_note(f"cleaning up {vm.instance_name} also failed: {exc}")

    def _remove_console_log(self, host_ref: HostRef, vm: VmSpec) -> None:
        # Remote hosts keep theirs (libvirt offers no file removal); logrotate ages them out.
        if not host.is_local(self._uri(host_ref)):
            return
        try:
            os.remove(self._console_log(vm))
        except FileNotFoundError:
            pass

    def _on_declared_shared_storage(self, vm: VmSpec) -> bool:
        """Every disk file of ``vm`` lies below a ``shared_filesystems`` directory (network
        disks need no such declaration)."""
        if not self.settings.shared_filesystems:
            return False
        for volume in vm.volumes:
            source = config.disk_source(volume)
            if source.kind == "file" and not any(
                    source.path.startswith(shared.rstrip("/") + "/") for shared in self.settings.shared_filesystems):
                return False
        return True

    def _forget_sample(self, vm: VmSpec) -> None:
        with self._lock:
            self._cpu_samples.pop(vm.uuid, None)


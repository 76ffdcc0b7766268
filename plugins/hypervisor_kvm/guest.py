"""One libvirt domain's lifecycle: define, start, stop, reboot, remove, state, stats,
disks on the fly and internal snapshots.

Every libvirt error leaves as the core's error class (``errors.translate``) naming the
operation and the domain. Methods documented as idempotent treat "already in that
state" as success, checked by asking libvirt again, never by ignoring the error.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import xml.etree.ElementTree as ET

from core.drivers import PowerState, VmStats
from core.errors import InvalidParameterError, ResourceInUseError

from .errors import is_no_domain, is_not_running, libvirt, translate

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2

_POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.UNKNOWN,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.ON,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.ON,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.ON,
    # still running while the guest shuts down
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.ON,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.OFF,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.OFF,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.ON,
}

# A removed VM keeps no managed-save image, and its snapshot metadata goes too (the internal
# snapshots themselves live in the volumes). The driver makes no NVRAM (no UEFI) and no
# checkpoints, so those flags are not asked for (libvirt's test driver refuses them).
_UNDEFINE_FLAGS = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


def power_state(state: int) -> PowerState:
    return _POWER_STATES.get(state, PowerState.UNKNOWN)


@dataclasses.dataclass(frozen=True)
class CpuSample:
    """CPU time used by a domain at a moment, for the next ``stats`` call's percentage."""

    monotonic: float
    cpu_time_ns: int


class Guest:
    """One domain of one connection. Cheap to make; holds no state beyond the handle."""

    def __init__(self, domain: libvirt.virDomain):
        self.domain = domain
        self.name = domain.name()

    # -- finding and defining --------------------------------------------------------

    @classmethod
    def lookup(cls, conn: libvirt.virConnect, uuid: str) -> Guest | None:
        """The domain with this uuid, or None when the host has none."""
        try:
            return cls(conn.lookupByUUIDString(uuid))
        except libvirt.libvirtError as exc:
            if is_no_domain(exc):
                return None
            raise translate(exc, f"looking up domain {uuid}") from exc

    @classmethod
    def define(cls, conn: libvirt.virConnect, xml: str) -> Guest:
        """Define (or redefine, for the same name and uuid) a persistent domain."""
        try:
            return cls(conn.defineXML(xml))
        except libvirt.libvirtError as exc:
            raise translate(exc, "defining the domain") from exc

    def xml(self, inactive: bool = False) -> ET.Element:
        try:
            return ET.fromstring(self.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0))
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reading the definition of {self.name}") from exc

    # -- state -----------------------------------------------------------------------

    def is_active(self) -> bool:
        try:
            return self.domain.isActive() == 1
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reading the state of {self.name}") from exc

    def power_state(self) -> PowerState:
        try:
            state, _reason = self.domain.state()
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reading the state of {self.name}") from exc
        return power_state(state)

    # -- lifecycle -------------------------------------------------------------------

    def create(self) -> None:
        """Power the defined domain on. On failure the domain stays defined and off."""
        try:
            self.domain.create()
        except libvirt.libvirtError as exc:
            raise translate(exc, f"starting {self.name}") from exc

    def destroy(self) -> None:
        """Power off at once (QEMU gets SIGTERM, then SIGKILL). Idempotent."""
        try:
            self.domain.destroy()
        except libvirt.libvirtError as exc:
            if is_not_running(exc) and not self.is_active():
                return
            raise translate(exc, f"powering off {self.name}") from exc

    def shutdown(self, timeout: float) -> bool:
        """Ask the guest to power off (ACPI power button) and wait up to ``timeout``
        seconds; power it off by force after that. The domain is off afterwards.
        Returns True when the guest powered off by itself, False when it was forced."""
        if not self.is_active():
            return True
        try:
            # libvirt's default method: ACPI for QEMU, as Strato's domains have no guest agent
            self.domain.shutdown()
        except libvirt.libvirtError as exc:
            if is_not_running(exc) and not self.is_active():
                return True
            raise translate(exc, f"shutting down {self.name}") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_active():
                return True
            time.sleep(POLL_INTERVAL_S)
        log.info("%s did not power off within %.0f s of an ACPI shutdown; forcing it", self.name, timeout)
        self.destroy()
        return False

    def reboot(self, timeout: float, guest_driven: bool) -> str:
        """Reboot the running domain. Raises ``InvalidParameterError`` when it is off.

        With ``guest_driven`` (QEMU: libvirt presses the ACPI power button and resets the
        machine once the guest powers off) this waits up to ``timeout`` seconds for the
        reset and resets the machine itself when the guest ignored the button. Returns
        how it rebooted: "acpi", "reset" (forced), or "immediate" (the hypervisor reboots
        at once, as libvirt's test driver does).
        """
        if not self.is_active():
            raise InvalidParameterError(f"{self.name} is not running; only a running VM can be rebooted")
        if not guest_driven:
            self._reboot()
            return "immediate"
        reset = threading.Event()
        conn = self.domain.connect()
        try:
            callback = conn.domainEventRegisterAny(self.domain, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
                                                   lambda *_args: reset.set(), None)
        except libvirt.libvirtError as exc:
            raise translate(exc, f"watching {self.name} for its reboot") from exc
        try:
            self._reboot()
            if reset.wait(timeout):
                return "acpi"
            # libvirt still expects the guest's power-off to mean "reboot" until the next
            # shutdown/destroy through libvirt; Strato's stop goes through those, so it is unaffected
            log.info("%s did not reboot within %.0f s of an ACPI reboot; resetting it", self.name, timeout)
            try:
                self.domain.reset(0)
            except libvirt.libvirtError as exc:
                raise translate(exc, f"resetting {self.name}") from exc
            return "reset"
        finally:
            try:
                conn.domainEventDeregisterAny(callback)
            except libvirt.libvirtError as exc:
                # the callback dies with the connection; a dead connection is reopened later
                log.debug("deregistering the reboot watch of %s: %s", self.name, exc)

    def _reboot(self) -> None:
        try:
            self.domain.reboot(0)
        except libvirt.libvirtError as exc:
            raise translate(exc, f"rebooting {self.name}") from exc

    def undefine(self) -> None:
        """Remove the definition (and snapshot metadata) of the inactive domain.
        Idempotent; a running domain is refused (destroy it first)."""
        try:
            self.domain.undefineFlags(_UNDEFINE_FLAGS)
        except libvirt.libvirtError as exc:
            if is_no_domain(exc):
                return
            raise translate(exc, f"removing the definition of {self.name}") from exc

    # -- details -----------------------------------------------------------------------

    def vnc(self) -> tuple[str, int] | None:
        """Address and port of the running domain's VNC server."""
        graphics = self.xml().find("devices/graphics[@type='vnc']")
        if graphics is None or int(graphics.get("port", "-1")) <= 0:
            return None
        return graphics.get("listen", "127.0.0.1"), int(graphics.get("port"))

    def disk_targets(self) -> list[str]:
        return [t.get("dev") for t in self.xml().iterfind("devices/disk/target") if t.get("dev")]

    def stats(self, previous: CpuSample | None, interval: float) -> tuple[VmStats, CpuSample]:
        """Counters of the running domain, and the CPU sample to pass next time.

        CPU use is the share of the domain's vCPUs used since ``previous``; without one,
        over ``interval`` seconds measured now. Disk and network counters are totals
        since the domain started; NICs without a host device (user-mode) are not counted.
        """
        if not self.is_active():
            raise InvalidParameterError(f"{self.name} is not running; a stopped VM has no statistics")
        try:
            if previous is None:
                previous = self._cpu_sample()
                time.sleep(interval)
            sample = self._cpu_sample()
            _state, _max_kib, memory_kib, vcpus, _cpu_ns = self.domain.info()
            stats = VmStats(memory_kbs=memory_kib)
            elapsed_ns = (sample.monotonic - previous.monotonic) * 1e9
            if elapsed_ns > 0:
                used = (sample.cpu_time_ns - previous.cpu_time_ns) / (elapsed_ns * max(1, vcpus)) * 100
                stats.cpu_used_percent = round(min(100.0, max(0.0, used)), 2)
            live = self.xml()
            for target in live.iterfind("devices/disk/target"):
                _rd_req, rd_bytes, _wr_req, wr_bytes, _errs = self.domain.blockStats(target.get("dev"))
                stats.disk_read_bytes += rd_bytes
                stats.disk_write_bytes += wr_bytes
            for target in live.iterfind("devices/interface/target"):
                # libvirt reports tap counters from the guest's side: rx is what it received
                counters = self.domain.interfaceStats(target.get("dev"))
                stats.network_read_bytes += counters[0]
                stats.network_write_bytes += counters[4]
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reading the statistics of {self.name}") from exc
        return stats, sample

    def _cpu_sample(self) -> CpuSample:
        return CpuSample(time.monotonic(), self.domain.info()[4])

    # -- disks -----------------------------------------------------------------------

    def _device_flags(self) -> int:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self.is_active():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        return flags

    def attach_disk(self, disk_xml: str) -> None:
        """Add a disk to the definition and, when running, to the guest. On failure the
        domain is as it was."""
        try:
            self.domain.attachDeviceFlags(disk_xml, self._device_flags())
        except libvirt.libvirtError as exc:
            raise translate(exc, f"attaching a disk to {self.name}") from exc

    def detach_disk(self, target: str, timeout: float) -> None:
        """Remove the disk ``target`` (``vdb``) from the definition and the running guest.
        Idempotent. A running guest must release the disk (PCI unplug) within ``timeout``
        seconds, else ``ResourceInUseError``; the disk is out of the definition then and
        leaves the guest when it lets go or at the next stop."""
        live = self._disk(target, inactive=False) if self.is_active() else None
        persistent = self._disk(target, inactive=True)
        if live is None and persistent is None:
            return
        flags = ((libvirt.VIR_DOMAIN_AFFECT_LIVE if live is not None else 0)
                 | (libvirt.VIR_DOMAIN_AFFECT_CONFIG if persistent is not None else 0))
        disk = live if live is not None else persistent
        try:
            self.domain.detachDeviceFlags(ET.tostring(disk, encoding="unicode"), flags)
        except libvirt.libvirtError as exc:
            raise translate(exc, f"detaching {target} from {self.name}") from exc
        if not flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            return
        deadline = time.monotonic() + timeout
        while self._disk(target, inactive=False) is not None:
            if time.monotonic() >= deadline:
                raise ResourceInUseError(f"the guest of {self.name} did not release disk {target} "
                                         f"within {timeout:.0f} s")
            time.sleep(POLL_INTERVAL_S)

    def _disk(self, target: str, inactive: bool) -> ET.Element | None:
        for disk in self.xml(inactive=inactive).iterfind("devices/disk"):
            dev = disk.find("target")
            if dev is not None and dev.get("dev") == target:
                return disk
        return None

    # -- snapshots -------------------------------------------------------------------

    def create_snapshot(self, name: str, description: str = "") -> None:
        """An internal snapshot (every qcow2 disk, plus memory when running)."""
        snap = ET.Element("domainsnapshot")
        ET.SubElement(snap, "name").text = name
        if description:
            ET.SubElement(snap, "description").text = description
        try:
            self.domain.snapshotCreateXML(ET.tostring(snap, encoding="unicode"), 0)
        except libvirt.libvirtError as exc:
            raise translate(exc, f"snapshotting {self.name} as {name!r}") from exc

    def revert_snapshot(self, name: str) -> None:
        """Return to the snapshot: running if it was taken running, off otherwise."""
        try:
            self.domain.revertToSnapshot(self.domain.snapshotLookupByName(name, 0), 0)
        except libvirt.libvirtError as exc:
            raise translate(exc, f"reverting {self.name} to snapshot {name!r}") from exc

    def delete_snapshot(self, name: str) -> None:
        """Delete the snapshot (its data in the disks too). Idempotent."""
        try:
            self.domain.snapshotLookupByName(name, 0).delete(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
                return
            raise translate(exc, f"deleting snapshot {name!r} of {self.name}") from exc

    def snapshot_names(self) -> list[str]:
        try:
            return sorted(s.getName() for s in self.domain.listAllSnapshots(0))
        except libvirt.libvirtError as exc:
            raise translate(exc, f"listing the snapshots of {self.name}") from exc

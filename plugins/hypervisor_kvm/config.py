"""Libvirt domain XML from a ``VmSpec``: pure building, no policy, no libvirt calls.

Every choice (domain type, where the console log goes, what a NIC without a bridge
becomes) is made by the caller and passed in; this module only turns specs into XML
and raises ``InvalidParameterError`` / ``UnsupportedError`` for specs it cannot express.

What a domain gets:

- ``<domain type=...>`` as given (``kvm``, ``qemu``; ``test`` for libvirt's test driver),
  the core's VM uuid as the domain uuid and the instance name as the domain name;
- ``<features><acpi/></features>`` so the guest powers off on an ACPI shutdown;
- ``<cputune><shares>`` = cpus x MHz, CloudStack's way of weighting offerings;
- one virtio disk per volume, ``vda`` for device id 0, ``vdb`` for 1, ...; the ROOT
  volume is booted first. Where the file is comes from the pool (``disk_source``);
- one virtio NIC per ``NicSpec`` on ``nic.bridge``; a NIC without a bridge becomes a
  user-mode (QEMU slirp) NIC with the same MAC when ``nic_fallback="user"``, is left
  out with ``"none"``, and is refused with ``"error"``;
- a serial console (pty, so ``virsh console`` works) copied to ``console_log`` by
  virtlogd, and VNC on 127.0.0.1 with a port libvirt picks.

``vm.boot_args`` and ``vm.user_data`` are not expressed (no direct kernel boot, no
config drive yet).
"""

from __future__ import annotations

import dataclasses
import posixpath
import uuid as uuidlib
import xml.etree.ElementTree as ET
from urllib.parse import unquote, urlsplit

from core.drivers import NicSpec, VmSpec, VolumeSpec
from core.errors import InvalidParameterError, UnsupportedError

DOMAIN_TYPES = ("kvm", "qemu", "test")
NIC_FALLBACKS = ("user", "none", "error")
#: CloudStack volume format -> QEMU driver type
DISK_FORMATS = {"QCOW2": "qcow2", "RAW": "raw"}
#: the metadata namespace Strato marks its domains with
METADATA_NS = "https://strato.invalid/xmlns/kvm/1"
ET.register_namespace("strato", METADATA_NS)


@dataclasses.dataclass(frozen=True)
class DiskSource:
    """Where QEMU finds a volume: a host file, or a file on an NFS server (QEMU's libnfs)."""

    kind: str  # "file" or "nfs"
    path: str  # absolute host path ("file") or absolute path on the server ("nfs")
    server: str | None = None
    port: int | None = None


def disk_target(device_id: int) -> str:
    """``vda`` for device 0, ``vdz`` for 25, ``vdaa`` for 26, as the kernel names them."""
    if device_id < 0 or device_id >= 26 * 27:
        raise InvalidParameterError(f"volume device id {device_id} is out of range (0..{26 * 27 - 1})")
    if device_id < 26:
        return "vd" + chr(ord("a") + device_id)
    return "vd" + chr(ord("a") + device_id // 26 - 1) + chr(ord("a") + device_id % 26)


def _join(root: str, path: str) -> str:
    # An absolute volume path is already the full path; a relative one lies under the pool root.
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(root, path))


def disk_source(volume: VolumeSpec) -> DiskSource:
    """Resolve a volume to the file QEMU opens.

    ``volume.path`` is an ``nfs://server[:port]/path`` URL (a file QEMU's NFS client
    opens, as the nfs storage plugin reports volumes of pools it reaches with libnfs), an
    absolute path (taken as it is), or a path relative to the pool root. The root is
    ``pool_details["mountpoint"]`` when the storage plugin mounted the pool on this host;
    otherwise an ``nfs://server[:port]/export`` pool is reached by QEMU's NFS client
    (``pool_details`` ``server``/``export`` win over the URL), and a ``file://``,
    ``sharedmountpoint://`` or plain-path pool is a local directory.
    """
    if not volume.path:
        raise InvalidParameterError(f"volume {volume.name} ({volume.uuid}) has no path: it was never created")
    if volume.path.lower().startswith("nfs://"):
        parts = urlsplit(volume.path)
        if not parts.hostname or not parts.path:
            raise InvalidParameterError(f"volume {volume.name}: {volume.path!r} names no NFS server and file")
        return DiskSource("nfs", posixpath.normpath(unquote(parts.path)), server=parts.hostname, port=parts.port)
    details = volume.pool_details or {}
    if details.get("mountpoint"):
        return DiskSource("file", _join(details["mountpoint"], volume.path))
    url = volume.pool_url or ""
    if url.startswith("/"):
        return DiskSource("file", _join(url, volume.path))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("file", "sharedmountpoint"):
        return DiskSource("file", _join(unquote(parts.path) or "/", volume.path))
    if scheme == "nfs":
        server = details.get("server") or parts.hostname
        if not server:
            raise InvalidParameterError(f"pool URL {url!r} names no NFS server")
        export = details.get("export") or unquote(parts.path) or "/"
        return DiskSource("nfs", _join(export, volume.path), server=server, port=parts.port)
    raise UnsupportedError(f"volume {volume.name}: pools of URL {url!r} are not supported by the kvm plugin")


def disk_element(volume: VolumeSpec, boot_order: int | None = None) -> ET.Element:
    fmt = DISK_FORMATS.get((volume.format or "").upper())
    if fmt is None:
        raise UnsupportedError(f"volume {volume.name}: format {volume.format!r} is not one of "
                               f"{', '.join(DISK_FORMATS)}")
    source = disk_source(volume)
    disk = ET.Element("disk", type="file" if source.kind == "file" else "network", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type=fmt)
    if source.kind == "file":
        ET.SubElement(disk, "source", file=source.path)
    else:
        src = ET.SubElement(disk, "source", protocol="nfs", name=source.path)
        host = ET.SubElement(src, "host", name=source.server)
        if source.port:
            host.set("port", str(source.port))
        # QEMU's libnfs sends AUTH_SYS with these ids. libvirt cannot chown files on an
        # NFS server, so the files are reached as root, as CloudStack's KVM hosts do.
        details = volume.pool_details or {}
        ET.SubElement(src, "identity", user=str(details.get("nfs_user", "+0")),
                      group=str(details.get("nfs_group", "+0")))
    ET.SubElement(disk, "target", dev=disk_target(volume.device_id), bus="virtio")
    ET.SubElement(disk, "serial").text = volume.uuid.replace("-", "")[:20]
    if boot_order is not None:
        ET.SubElement(disk, "boot", order=str(boot_order))
    return disk


def disk_xml(volume: VolumeSpec) -> str:
    """The ``<disk>`` of one volume, as attach uses it."""
    return ET.tostring(disk_element(volume), encoding="unicode")


def interface_element(nic: NicSpec, nic_fallback: str = "user") -> ET.Element | None:
    """The ``<interface>`` of one NIC; None when it has no bridge and the fallback is ``none``."""
    if nic_fallback not in NIC_FALLBACKS:
        raise InvalidParameterError(f"nic_fallback {nic_fallback!r} is not one of {', '.join(NIC_FALLBACKS)}")
    if nic.bridge:
        iface = ET.Element("interface", type="bridge")
        ET.SubElement(iface, "source", bridge=nic.bridge)
    elif nic_fallback == "user":
        iface = ET.Element("interface", type="user")
    elif nic_fallback == "none":
        return None
    else:
        raise InvalidParameterError(f"NIC {nic.mac_address} (device {nic.device_id}) has no bridge: "
                                    "the network plugin did not plug it anywhere")
    ET.SubElement(iface, "mac", address=nic.mac_address)
    ET.SubElement(iface, "model", type="virtio")
    return iface


def domain_xml(vm: VmSpec, *, domain_type: str, console_log: str, nic_fallback: str = "user") -> str:
    """The persistent definition of ``vm``. Raises ``InvalidParameterError`` or
    ``UnsupportedError`` for a spec it cannot express; builds nothing anywhere."""
    if domain_type not in DOMAIN_TYPES:
        raise InvalidParameterError(f"domain type {domain_type!r} is not one of {', '.join(DOMAIN_TYPES)}")
    try:
        domain_uuid = str(uuidlib.UUID(vm.uuid))
    except ValueError:
        raise InvalidParameterError(f"VM {vm.instance_name}: uuid {vm.uuid!r} is not a UUID") from None
    if vm.cpu_count < 1 or vm.memory_mb < 1:
        raise InvalidParameterError(f"VM {vm.instance_name}: needs at least 1 CPU and 1 MiB of memory")
    if not console_log.startswith("/"):
        raise InvalidParameterError(f"console log path {console_log!r} must be absolute")

    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = vm.instance_name
    ET.SubElement(dom, "uuid").text = domain_uuid
    # libvirt refuses a multi-line title
    ET.SubElement(dom, "title").text = " ".join((vm.display_name or vm.instance_name).split())
    meta = ET.SubElement(ET.SubElement(dom, "metadata"), f"{{{METADATA_NS}}}instance")
    meta.set("uuid", vm.uuid)
    ET.SubElement(dom, "memory", unit="MiB").text = str(vm.memory_mb)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(vm.memory_mb)
    ET.SubElement(dom, "vcpu", placement="static").text = str(vm.cpu_count)
    if vm.cpu_speed_mhz > 0:
        ET.SubElement(ET.SubElement(dom, "cputune"), "shares").text = str(vm.cpu_count * vm.cpu_speed_mhz)
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type").text = "hvm"
    ET.SubElement(ET.SubElement(dom, "features"), "acpi")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    devices = ET.SubElement(dom, "devices")
    targets: set[str] = set()
    # ROOT first in the boot order; data disks are not bootable.
    for volume in sorted(vm.volumes, key=lambda v: (v.volume_type != "ROOT", v.device_id)):
        disk = disk_element(volume, boot_order=1 if volume.volume_type == "ROOT" else None)
        target = disk.find("target").get("dev")
        if target in targets:
            raise InvalidParameterError(f"VM {vm.instance_name}: two volumes have device id {volume.device_id}")
        targets.add(target)
        devices.append(disk)
    for nic in sorted(vm.nics, key=lambda n: n.device_id):
        iface = interface_element(nic, nic_fallback)
        if iface is not None:
            devices.append(iface)
    serial = ET.SubElement(devices, "serial", type="pty")
    ET.SubElement(serial, "log", file=console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    console = ET.SubElement(devices, "console", type="pty")
    ET.SubElement(console, "target", type="serial", port="0")
    graphics = ET.SubElement(devices, "graphics", type="vnc", autoport="yes", listen="127.0.0.1")
    ET.SubElement(graphics, "listen", type="address", address="127.0.0.1")
    return ET.tostring(dom, encoding="unicode")

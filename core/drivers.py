"""Driver contracts: what a hypervisor, network or storage plugin implements.

A driver is a stateful class (one instance per enabled plugin, made at start-up)
named by an entry point in ``strato.hypervisors``, ``strato.network`` or
``strato.storage``. The core talks to drivers only through these methods and
only with the plain specs defined here, never with ORM rows: platform ids
(libvirt domain UUIDs, vSphere managed object refs) stay inside the driver,
which may keep what it needs in the ``details`` dict the core stores for it.

Every method that changes the outside world states what must hold when it
fails: the core relies on that to leave nothing orphaned.

``capabilities`` is class data the planner and API read; a driver sets only the
keys it supports.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from typing import Any, BinaryIO, Callable, ClassVar


class PowerState(str, enum.Enum):
    """What the hypervisor reports about a VM, independent of Strato's VM state."""

    ON = "PowerOn"
    OFF = "PowerOff"
    UNKNOWN = "PowerUnknown"
    MISSING = "PowerReportMissing"


@dataclasses.dataclass
class HostInfo:
    """What a driver discovered about a host when it was added or pinged."""

    name: str
    cpu_sockets: int
    cpu_cores: int
    cpu_speed_mhz: int
    memory_bytes: int
    hypervisor_version: str = ""
    capabilities: list[str] = dataclasses.field(default_factory=list)
    #: driver-private data the core stores with the host and hands back in HostRef
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class HostRef:
    """A host as the core hands it to a driver."""

    uuid: str
    name: str
    url: str
    details: dict[str, Any]


@dataclasses.dataclass
class NicSpec:
    mac_address: str
    ip_address: str | None
    netmask: str | None
    gateway: str | None
    device_id: int
    is_default: bool
    #: where to plug the NIC, decided by the network plugin (a bridge name, a port group)
    bridge: str | None = None
    vlan: str | None = None


@dataclasses.dataclass
class VolumeSpec:
    uuid: str
    name: str
    volume_type: str  # ROOT or DATADISK
    size_bytes: int
    device_id: int
    #: the pool the volume lives on, as its storage driver describes it
    pool_url: str
    pool_details: dict[str, Any]
    #: the volume's location inside the pool, set by the storage driver
    path: str | None = None
    format: str = "QCOW2"


@dataclasses.dataclass
class VmSpec:
    """Everything a hypervisor driver needs to run one VM."""

    uuid: str
    instance_name: str
    display_name: str
    cpu_count: int
    cpu_speed_mhz: int
    memory_mb: int
    volumes: list[VolumeSpec]
    nics: list[NicSpec]
    os_type: str = ""
    boot_args: str = ""
    user_data: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class VmStats:
    cpu_used_percent: float = 0.0
    memory_kbs: int = 0
    disk_read_bytes: int = 0
    disk_write_bytes: int = 0
    network_read_bytes: int = 0
    network_write_bytes: int = 0


@dataclasses.dataclass
class PoolInfo:
    capacity_bytes: int
    used_bytes: int
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PoolRef:
    uuid: str
    name: str
    url: str
    details: dict[str, Any]


@dataclasses.dataclass
class TemplateRef:
    uuid: str
    name: str
    url: str
    format: str
    checksum: str | None
    size_bytes: int | None
    #: where the template sits on a store/pool, as the storage driver reported it
    install_path: str | None = None
    #: the image store holding it (``install_path`` is relative to it)
    store_url: str | None = None
    store_details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SnapshotBackup:
    """A volume snapshot's copy on an image store, as the primary storage driver made it."""

    #: where the backup sits, relative to the store (the core hands it back as it is)
    path: str
    physical_size_bytes: int = 0
    virtual_size_bytes: int = 0


class Driver(abc.ABC):
    """Common base: a name and capabilities. ``config`` is the plugin's own config section."""

    #: the name used in strato.toml and in entry points
    name: ClassVar[str]
    capabilities: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: dict[str, Any] | None = None):
        self.config = dict(config or {})

    def close(self) -> None:
        """Release connections at shut-down. Never raises."""


class HypervisorDriver(Driver):
    """A kind of hypervisor host.

    ``hypervisor_type`` is CloudStack's name for it (``KVM``, ``VMware``,
    ``XenServer``, ``Hyper-V``, ``Simulator``); clusters and templates carry it.
    ``url_schemes`` lists the ``addHost`` URL schemes the driver accepts.

    Capability keys the core reads: ``live_migration``, ``volume_hotplug``,
    ``vm_snapshots``, ``stats``, ``max_guests_per_host``.
    """

    hypervisor_type: ClassVar[str]
    url_schemes: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def connect_host(self, url: str, username: str | None, password: str | None) -> HostInfo:
        """Reach the host at ``url`` and report what it has.

        Raises ``ResourceUnavailableError`` (host unreachable) or
        ``InvalidParameterError`` (the URL is not one this driver takes), with
        the platform's own message kept. Leaves nothing behind on failure.
        """

    @abc.abstractmethod
    def ping_host(self, host: HostRef) -> bool:
        """True when the host answers. Never raises for an unreachable host."""

    def disconnect_host(self, host: HostRef) -> None:
        """The host is being removed from Strato; drop any connection to it."""

    @abc.abstractmethod
    def start_vm(self, host: HostRef, vm: VmSpec) -> dict[str, Any]:
        """Create (if needed) and power on the VM on ``host``.

        Returns driver details to keep with the VM (console address and the like).
        On failure nothing of this VM is left on the host, and the error raised
        is a ``StratoError`` carrying the platform's message.
        """

    @abc.abstractmethod
    def stop_vm(self, host: HostRef, vm: VmSpec, force: bool = False) -> None:
        """Power the VM off: a clean shutdown first unless ``force``, forced after
        the driver's timeout. Succeeds if the VM is already off or missing. The
        VM's definition may stay on the host; its disks stay."""

    @abc.abstractmethod
    def reboot_vm(self, host: HostRef, vm: VmSpec) -> str | None:
        """Reboot a running VM. Raises if it is not running on ``host``. May return a
        short word saying how (``"acpi"``, ``"reset"``), for the event log."""

    @abc.abstractmethod
    def destroy_vm(self, host: HostRef, vm: VmSpec) -> None:
        """Remove every trace of the VM from the host except its volumes.
        Idempotent: a VM already gone is success."""

    @abc.abstractmethod
    def power_states(self, host: HostRef) -> dict[str, PowerState]:
        """Every VM the host runs or knows, by instance name. Includes VMs Strato
        does not know; the core reports those, it never destroys them."""

    def vm_stats(self, host: HostRef, vm: VmSpec) -> VmStats:
        raise NotImplementedError

    def migrate_vm(self, source: HostRef, destination: HostRef, vm: VmSpec) -> dict[str, Any] | None:
        """Move a running VM. On failure the VM still runs on ``source``.

        May return driver details to keep with the VM, as ``start_vm`` does (the console
        address on ``destination``); the core merges them into the VM's."""
        raise NotImplementedError

    def attach_volume(self, host: HostRef, vm: VmSpec, volume: VolumeSpec) -> None:
        raise NotImplementedError

    # VM snapshots (capability ``vm_snapshots``): every disk, and the memory of a running VM

    def create_vm_snapshot(self, host: HostRef, vm: VmSpec, name: str, description: str = "") -> None:
        """On failure no snapshot called ``name`` exists."""
        raise NotImplementedError

    def revert_vm_snapshot(self, host: HostRef, vm: VmSpec, name: str) -> None:
        """Afterwards the VM runs if and only if it was running when the snapshot was taken."""
        raise NotImplementedError

    def delete_vm_snapshot(self, host: HostRef, vm: VmSpec, name: str) -> None:
        """Idempotent."""
        raise NotImplementedError

    def list_vm_snapshots(self, host: HostRef, vm: VmSpec) -> list[str]:
        raise NotImplementedError

    def detach_volume(self, host: HostRef, vm: VmSpec, volume: VolumeSpec) -> None:
        raise NotImplementedError


class PrimaryStorageDriver(Driver):
    """Storage for the volumes of running VMs (CloudStack's primary storage).

    ``url_schemes`` are the ``createStoragePool`` URL schemes it takes.
    """

    url_schemes: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def connect_pool(self, url: str, details: dict[str, Any]) -> PoolInfo:
        """Reach the pool and read its capacity. Raises ``ResourceUnavailableError``
        or ``InvalidParameterError``; leaves nothing behind on failure."""

    @abc.abstractmethod
    def pool_stats(self, pool: PoolRef) -> PoolInfo:
        ...

    @abc.abstractmethod
    def create_volume(self, pool: PoolRef, volume: VolumeSpec, template: TemplateRef | None) -> str:
        """Create the volume (from ``template`` when given) and return its path in
        the pool. On failure no file of it remains."""

    @abc.abstractmethod
    def delete_volume(self, pool: PoolRef, volume: VolumeSpec) -> None:
        """Remove the volume's data. Idempotent. With ``volume.path`` None (a creation
        that crashed before its path was recorded), remove whatever ``create_volume``
        may have made for ``volume.uuid``: paths must therefore derive from the uuid."""

    def resize_volume(self, pool: PoolRef, volume: VolumeSpec, new_size_bytes: int) -> None:
        """Grow the volume to ``new_size_bytes``. Shrinking raises ``InvalidParameterError``
        and changes nothing; on failure the volume keeps its old size."""
        raise NotImplementedError

    def disconnect_pool(self, pool: PoolRef) -> None:
        """The pool is being removed from Strato."""

    # -- snapshots, copies and templates (optional: the defaults raise NotImplementedError,
    #    which the core reports as 432 for this pool) ------------------------------------

    def backup_volume(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, snapshot_uuid: str, *,
                      account: int | str = 0, running: bool = False) -> SnapshotBackup:
        """Copy the volume's current content, standalone (no backing file), onto the image
        store ``store`` as the backup of snapshot ``snapshot_uuid``. ``running``: a VM has
        the volume open; the copy is then crash-consistent. The volume is not changed. On
        failure no partial backup remains."""
        raise NotImplementedError

    def restore_snapshot(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef, backup_path: str) -> str:
        """Make the volume's file a copy of the backup ``backup_path`` on ``store`` (a new
        file, or replacing the file of a volume no running VM has open) and return its path
        in the pool. On failure the volume is as it was and no partial file remains."""
        raise NotImplementedError

    def copy_volume(self, source: PoolRef, volume: VolumeSpec, destination: PoolRef) -> str:
        """Copy a volume no running VM has open onto pool ``destination`` (standalone, named
        from its uuid as ``create_volume`` names it) and return its path there. The source is
        not changed (the core deletes it afterwards); on failure nothing of the copy remains."""
        raise NotImplementedError

    def template_from_volume(self, pool: PoolRef, volume: VolumeSpec, store: PoolRef,
                             template: TemplateRef) -> TemplateRef:
        """Write a standalone image of a volume no running VM has open onto the image store
        ``store`` as ``template``; return it with ``install_path`` (relative to the store)
        and ``size_bytes`` (its virtual size). On failure no partial file remains."""
        raise NotImplementedError

    def template_copies(self, pool: PoolRef) -> list[str]:
        """The uuids of the templates the pool keeps a copy of (to back volumes made from them)."""
        raise NotImplementedError

    def delete_template_copy(self, pool: PoolRef, template: TemplateRef) -> None:
        """Remove the pool's copy of ``template``; the core calls it once no volume on the
        pool is made from that template. Idempotent."""
        raise NotImplementedError


class ImageStoreDriver(Driver):
    """Storage for templates, ISOs and snapshots (CloudStack's secondary storage)."""

    url_schemes: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def connect_store(self, url: str, details: dict[str, Any]) -> PoolInfo:
        """Reach the store and read its capacity; raises as ``connect_pool``."""

    @abc.abstractmethod
    def register_template(self, store: PoolRef, template: TemplateRef, progress) -> TemplateRef:
        """Fetch the template into the store, calling ``progress(percent)`` as it
        goes. Returns the template with ``install_path`` and ``size_bytes`` set.
        On failure no partial file remains."""

    @abc.abstractmethod
    def delete_template(self, store: PoolRef, template: TemplateRef) -> None:
        """Remove the template's files. Idempotent."""

    # -- optional (the defaults raise NotImplementedError, reported as 432) -------------

    def delete_snapshot_backup(self, store: PoolRef, backup_path: str) -> None:
        """Remove a snapshot backup (the path ``backup_volume`` reported). Idempotent."""
        raise NotImplementedError

    def template_from_snapshot(self, store: PoolRef, backup_path: str, template: TemplateRef) -> TemplateRef:
        """Make ``template`` on ``store`` from the snapshot backup ``backup_path`` on the same
        store; return it with ``install_path`` and ``size_bytes`` (virtual size) set. On
        failure no partial file remains."""
        raise NotImplementedError

    def copy_template(self, store: PoolRef, template: TemplateRef, progress: Callable[[int], object]) -> TemplateRef:
        """Copy ``template`` from the image store its ``store_url``/``store_details`` name
        (with ``install_path`` there) into ``store``, calling ``progress(percent)``; return it
        with ``install_path`` (relative to ``store``) and ``size_bytes`` set. On failure no
        partial file remains."""
        raise NotImplementedError

    def open_template(self, store: PoolRef, template: TemplateRef) -> tuple[int, BinaryIO]:
        """The template's file on ``store`` (``install_path``), for a download: its size in
        bytes and a binary file opened for reading, which the caller closes."""
        raise NotImplementedError


class NetworkElement(Driver):
    """A provider of network services (DHCP, DNS, source NAT, ...) for guest networks.

    ``services`` is the set of CloudStack service names it provides
    (``Dhcp``, ``Dns``, ``SourceNat``, ``StaticNat``, ``PortForwarding``,
    ``Firewall``, ``Lb``, ``Vpn``, ``UserData``).
    """

    services: ClassVar[frozenset[str]] = frozenset()

    @abc.abstractmethod
    def implement_network(self, network: dict[str, Any]) -> dict[str, Any]:
        """Make the network usable (bridge, router) and its services match ``network``: the
        whole configuration, computed from the database by
        ``core.orchestration.networking.network_spec`` (addresses, NICs, rules, VPN; with
        ``router.state`` "Stopped" the services stop and the bridge stays). Called again
        after every change; ``full_apply`` set means a (re)start. Returns details to keep
        (``bridge`` is where NICs plug in). Idempotent; on failure nothing half-built remains."""

    @abc.abstractmethod
    def prepare_nic(self, network: dict[str, Any], nic: NicSpec, vm: VmSpec) -> NicSpec:
        """Called before a VM with this NIC starts; returns the NIC with ``bridge`` set."""

    @abc.abstractmethod
    def release_nic(self, network: dict[str, Any], nic: NicSpec, vm: VmSpec) -> None:
        """The NIC's VM stopped or went away. Idempotent."""

    @abc.abstractmethod
    def shutdown_network(self, network: dict[str, Any]) -> None:
        """Tear the network's resources down. Idempotent."""

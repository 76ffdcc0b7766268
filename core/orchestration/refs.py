"""ORM rows turned into the plain specs drivers receive (drivers never see ORM rows)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ..drivers import HostRef, NicSpec, PoolRef, TemplateRef, VmSpec, VolumeSpec
from ..model import Host, ImageStore, StoragePool, Template, VirtualMachine, Volume

MiB = 1024 * 1024


def host_ref(host: Host) -> HostRef:
    return HostRef(uuid=host.uuid, name=host.name, url=host.url, details=dict(host.details or {}))


def pool_ref(pool: StoragePool | ImageStore) -> PoolRef:
    return PoolRef(uuid=pool.uuid, name=pool.name, url=pool.url, details=dict(pool.details or {}))


def volume_spec(volume: Volume) -> VolumeSpec:
    pool = volume.pool
    return VolumeSpec(uuid=volume.uuid, name=volume.name, volume_type=volume.volume_type, size_bytes=volume.size,
                      device_id=volume.device_id or 0, pool_url=pool.url if pool else "",
                      pool_details=dict(pool.details or {}) if pool else {}, path=volume.path, format=volume.format)


def template_ref(template: Template, install_path: str | None = None) -> TemplateRef:
    return TemplateRef(uuid=template.uuid, name=template.name, url=template.url or "", format=template.format,
                       checksum=template.checksum, size_bytes=template.size or None, install_path=install_path)


def vm_spec(session: Session, vm: VirtualMachine) -> VmSpec:
    offering = vm.service_offering
    nics = [NicSpec(mac_address=nic.mac_address, ip_address=nic.ip_address, netmask=nic.netmask,
                    gateway=nic.gateway, device_id=nic.device_id, is_default=nic.is_default,
                    bridge=(nic.network.details or {}).get("bridge"), vlan=nic.network.vlan)
            for nic in vm.nics]
    volumes = [volume_spec(v) for v in vm.volumes if v.removed is None]
    return VmSpec(uuid=vm.uuid, instance_name=vm.instance_name, display_name=vm.display_name,
                  cpu_count=offering.cpu_number, cpu_speed_mhz=offering.cpu_speed, memory_mb=offering.memory,
                  volumes=volumes, nics=nics, os_type=vm.template.os_type.description if vm.template else "",
                  user_data=vm.user_data, details=dict(vm.details or {}))

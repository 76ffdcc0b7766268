"""Views of VMs, NICs, volumes and templates (UserVmResponse, NicResponse, VolumeResponse,
TemplateResponse in CloudStack)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from core.model import DownloadState, ImageStore, TemplateStoreRef, VirtualMachine, Volume, Zone

from .common import OWNER_FIELDS, compact, cs_date, owner_fields
from .identity import tag_list

GiB = 1024**3

VM_FIELDS = {
    "id": "the ID of the virtual machine", "name": "the name of the virtual machine",
    "displayname": "user generated name", "state": "the state of the virtual machine",
    "zoneid": "the ID of the availability zone", "zonename": "the name of the availability zone",
    "templateid": "the ID of the template", "templatename": "the name of the template",
    "templatedisplaytext": "the template's display text",
    "serviceofferingid": "the ID of the service offering", "serviceofferingname": "the name of the service offering",
    "cpunumber": "the number of vCPUs", "cpuspeed": "the speed of each vCPU (MHz)", "memory": "the memory (MiB)",
    "guestosid": "the ID of the guest OS type", "hypervisor": "the hypervisor the VM belongs to",
    "hostid": "the ID of the host (admins)", "hostname": "the name of the host (admins)",
    "instancename": "the name on the hypervisor (admins)", "created": "the date the VM was created",
    "haenable": "true if high availability is enabled", "group": "the group name of the VM",
    "nic": "the NICs of the VM", "rootdeviceid": "device ID of the root volume",
    "rootdevicetype": "device type of the root volume", "passwordenabled": "true if the password can be reset",
    "isdynamicallyscalable": "true if the VM can be scaled live", "tags": "the resource tags",
    "securitygroup": "the security groups", "affinitygroup": "the affinity groups",
    **OWNER_FIELDS,
}


def vm_load_options():
    """Eager loading for VM lists: one query per relationship, not per VM."""
    return (selectinload(VirtualMachine.nics), selectinload(VirtualMachine.volumes),
            selectinload(VirtualMachine.template), selectinload(VirtualMachine.service_offering),
            selectinload(VirtualMachine.zone), selectinload(VirtualMachine.host))


def vm_view(session: Session, vm: VirtualMachine, *, admin: bool) -> dict:
    offering, template, zone = vm.service_offering, vm.template, vm.zone
    root = next((v for v in vm.volumes if v.volume_type == "ROOT"), None)
    data = {
        "id": vm.uuid, "name": vm.name, "displayname": vm.display_name, "state": vm.state,
        "zoneid": zone.uuid, "zonename": zone.name,
        "templateid": template.uuid, "templatename": template.name, "templatedisplaytext": template.display_text,
        "serviceofferingid": offering.uuid, "serviceofferingname": offering.name,
        "cpunumber": offering.cpu_number, "cpuspeed": offering.cpu_speed, "memory": offering.memory,
        "guestosid": template.os_type.uuid, "ostypeid": template.os_type.uuid,
        "hypervisor": vm.hypervisor or template.hypervisor,
        "created": cs_date(vm.created), "haenable": vm.ha_enabled, "group": vm.group_name,
        "passwordenabled": template.password_enabled, "isdynamicallyscalable": template.is_dynamically_scalable,
        "rootdeviceid": root.device_id if root else None, "rootdevicetype": "ROOT" if root else None,
        "nic": [nic_view(nic) for nic in vm.nics],
        "tags": tag_list(session, "UserVm", vm.id), "securitygroup": [], "affinitygroup": [],
        **owner_fields(session, vm.account_id, vm.domain_id),
    }
    if vm.state == "Running" and vm.details.get("console"):
        data["vnc"] = vm.details["console"] if admin else None
    if admin:
        data.update(instancename=vm.instance_name, hostid=vm.host.uuid if vm.host else None,
                    hostname=vm.host.name if vm.host else None)
    return compact(data)


def nic_view(nic) -> dict:
    network = nic.network
    return compact({
        "id": nic.uuid, "networkid": network.uuid, "networkname": network.name, "ipaddress": nic.ip_address,
        "netmask": nic.netmask, "gateway": nic.gateway, "macaddress": nic.mac_address,
        "isdefault": nic.is_default, "deviceid": str(nic.device_id), "traffictype": network.traffic_type,
        "type": network.guest_type, "broadcasturi": f"vlan://{network.vlan}" if network.vlan else None,
    })


VOLUME_FIELDS = {
    "id": "the ID of the volume", "name": "the name of the volume", "type": "ROOT or DATADISK",
    "state": "the state of the volume", "size": "the size in bytes", "zoneid": "the zone ID",
    "zonename": "the zone name", "virtualmachineid": "the VM it is attached to", "vmname": "that VM's name",
    "vmstate": "that VM's state", "deviceid": "the device ID on the VM", "storage": "the primary pool (admins)",
    "storageid": "the ID of the primary pool (admins)", "created": "the date the volume was created",
    "diskofferingid": "the disk offering", "templateid": "the template of a root volume", "path": "path (admins)",
    **OWNER_FIELDS,
}


def volume_view(session: Session, volume: Volume, *, admin: bool) -> dict:
    vm, zone = volume.vm, session.get(Zone, volume.zone_id)
    data = {
        "id": volume.uuid, "name": volume.name, "type": volume.volume_type, "state": volume.state,
        "size": volume.size, "zoneid": zone.uuid, "zonename": zone.name,
        "virtualmachineid": vm.uuid if vm else None, "vmname": vm.name if vm else None,
        "vmdisplayname": vm.display_name if vm else None, "vmstate": vm.state if vm else None,
        "deviceid": volume.device_id if vm else None, "created": cs_date(volume.created),
        "provisioningtype": "thin", "hypervisor": vm.hypervisor if vm else None,
        **owner_fields(session, volume.account_id, volume.domain_id),
    }
    if admin and volume.pool is not None:
        data.update(storage=volume.pool.name, storageid=volume.pool.uuid, path=volume.path)
    return compact(data)


TEMPLATE_FIELDS = {
    "id": "the template ID", "name": "the template name", "displaytext": "the template display text",
    "ispublic": "true if public", "isfeatured": "true if featured", "isready": "true if ready to deploy",
    "status": "the download status", "format": "the image format", "hypervisor": "the hypervisor",
    "ostypeid": "the OS type ID", "ostypename": "the OS type name", "zoneid": "the zone ID",
    "zonename": "the zone name", "size": "the virtual size in bytes", "created": "the date created",
    "templatetype": "USER, BUILTIN or SYSTEM", "passwordenabled": "true if the password can be reset",
    "crossZones": "true if the template is in every zone", "checksum": "the checksum", "url": "the source URL",
    **OWNER_FIELDS,
}


def template_rows(session: Session, template, zone_id: int | None) -> list[dict]:
    """CloudStack lists a template once per zone it is in; ``zone_id`` restricts to one zone."""
    refs = session.execute(
        select(TemplateStoreRef, ImageStore).join(ImageStore, ImageStore.id == TemplateStoreRef.store_id)
        .where(TemplateStoreRef.template_id == template.id, ImageStore.removed.is_(None))).all()
    zones: dict[int | None, TemplateStoreRef] = {}
    for ref, store in refs:
        best = zones.get(store.zone_id)
        if best is None or ref.download_state == DownloadState.DOWNLOADED:
            zones[store.zone_id] = ref
    if not zones:  # registered before any store existed
        zones[template.zone_id] = None
    rows = []
    for zid, ref in zones.items():
        if zone_id is not None and zid not in (zone_id, None):
            continue
        rows.append(template_view(session, template, session.get(Zone, zid) if zid else None, ref))
    return rows


def template_view(session: Session, template, zone, ref) -> dict:
    ready = ref is not None and ref.download_state == DownloadState.DOWNLOADED
    if ref is None:
        status = "Not yet downloaded: no image store in the zone"
    elif ready:
        status = "Download Complete"
    elif ref.download_state == DownloadState.DOWNLOAD_ERROR:
        status = ref.error or "Download failed"
    else:
        status = f"{ref.download_percent}% Downloaded"
    return compact({
        "id": template.uuid, "name": template.name, "displaytext": template.display_text,
        "ispublic": template.is_public, "isfeatured": template.is_featured, "isready": ready,
        "isextractable": template.is_extractable, "passwordenabled": template.password_enabled,
        "isdynamicallyscalable": template.is_dynamically_scalable, "status": status,
        "format": template.format, "hypervisor": template.hypervisor, "bits": template.bits,
        "ostypeid": template.os_type.uuid, "ostypename": template.os_type.description,
        "zoneid": zone.uuid if zone else None, "zonename": zone.name if zone else None,
        "crossZones": template.zone_id is None, "size": (ref.size if ref and ref.size else template.size) or None,
        "physicalsize": ref.physical_size if ref and ref.physical_size else None,
        "created": cs_date(template.created), "templatetype": template.template_type,
        "checksum": template.checksum, "url": template.url, "requireshvm": template.requires_hvm,
        "downloaddetails": [{"downloadPercent": str(ref.download_percent), "downloadState": ref.download_state,
                             "datastore": ref.store.name}] if ref else [],
        "tags": tag_list(session, "Template", template.id),
        **owner_fields(session, template.account_id, template.domain_id),
    })

"""Views of volumes, snapshots, snapshot policies, ISOs and extracted templates
(CloudStack's VolumeResponse, SnapshotResponse, SnapshotPolicyResponse, TemplateResponse
for ISOs, ExtractResponse)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.model import DiskOffering, IntervalType, Snapshot, SnapshotPolicy, Template, Volume, Zone

from .common import OWNER_FIELDS, compact, cs_date, owner_fields
from .compute import TEMPLATE_FIELDS, template_rows
from .identity import tag_list

VOLUME_FIELDS = {
    "id": "the ID of the volume", "name": "the name of the volume", "type": "ROOT or DATADISK",
    "state": "the state of the volume", "size": "the size in bytes", "zoneid": "the zone ID",
    "zonename": "the zone name", "virtualmachineid": "the VM it is attached to", "vmname": "that VM's name",
    "vmdisplayname": "that VM's display name", "vmstate": "that VM's state", "deviceid": "the device ID on the VM",
    "diskofferingid": "the disk offering", "diskofferingname": "the disk offering's name",
    "diskofferingdisplaytext": "the disk offering's display text", "storagetype": "shared or local",
    "provisioningtype": "thin, sparse or fat", "hypervisor": "the hypervisor of the VM it is attached to",
    "created": "the date the volume was created", "destroyed": "true if the volume is destroyed",
    "templateid": "the template of a root volume", "templatename": "that template's name",
    "snapshotid": "the snapshot the volume was made from (createVolume's answer)",
    "storage": "the primary pool (admins)", "storageid": "the ID of the primary pool (admins)",
    "path": "the volume's path on its pool (admins)", "isextractable": "true if the volume may be downloaded",
    "displayvolume": "true if the volume is shown to its owner", "tags": "the resource tags",
    **OWNER_FIELDS,
}


def volume_view(session: Session, volume: Volume, *, admin: bool, snapshot_uuid: str | None = None) -> dict:
    vm, zone = volume.vm, session.get(Zone, volume.zone_id)
    offering = session.get(DiskOffering, volume.disk_offering_id) if volume.disk_offering_id else None
    template = session.get(Template, volume.template_id) if volume.template_id else None
    data = {
        "id": volume.uuid, "name": volume.name, "type": volume.volume_type, "state": volume.state,
        "size": volume.size, "zoneid": zone.uuid, "zonename": zone.name,
        "virtualmachineid": vm.uuid if vm else None, "vmname": vm.name if vm else None,
        "vmdisplayname": vm.display_name if vm else None, "vmstate": vm.state if vm else None,
        "deviceid": volume.device_id if vm else None, "created": cs_date(volume.created),
        "diskofferingid": offering.uuid if offering else None,
        "diskofferingname": offering.name if offering else None,
        "diskofferingdisplaytext": offering.display_text if offering else None,
        "storagetype": offering.storage_type if offering else "shared", "provisioningtype": "thin",
        "hypervisor": (vm.hypervisor if vm else None) or (volume.pool.hypervisor if volume.pool else None),
        "destroyed": volume.state in ("Destroy", "Expunging", "Expunged"),
        "templateid": template.uuid if template else None, "templatename": template.name if template else None,
        "snapshotid": snapshot_uuid, "isextractable": False, "displayvolume": True,
        "tags": tag_list(session, "Volume", volume.id),
        **owner_fields(session, volume.account_id, volume.domain_id),
    }
    if admin and volume.pool is not None:
        data.update(storage=volume.pool.name, storageid=volume.pool.uuid, path=volume.path)
    return compact(data)


SNAPSHOT_FIELDS = {
    "id": "ID of the snapshot", "name": "name of the snapshot", "snapshottype": "MANUAL, or the interval of the "
    "policy that took it", "intervaltype": "MANUAL, HOURLY, DAILY, WEEKLY or MONTHLY", "state": "the state: "
    "BackedUp means ready to use; BackingUp: being backed up to secondary storage",
    "volumeid": "ID of the disk volume", "volumename": "name of the disk volume",
    "volumetype": "type of the disk volume",
    "created": "the date the snapshot was created", "zoneid": "id of the availability zone",
    "zonename": "name of the availability zone", "physicalsize": "physical size of the backup on the image store",
    "virtualsize": "virtual size of the backed up volume", "revertable": "true if the volume can be reverted to it",
    "locationtype": "where the snapshot is kept: secondary (an image store)", "osTypeId": "id of the os on volume",
    "datastoretype": "type of the datastore for the snapshot entry", "tags": "the resource tags",
    **OWNER_FIELDS,
}


def snapshot_view(session: Session, snapshot: Snapshot) -> dict:
    volume, zone = snapshot.volume, session.get(Zone, snapshot.zone_id)
    template = session.get(Template, volume.template_id) if volume.template_id else None
    return compact({
        "id": snapshot.uuid, "name": snapshot.name, "snapshottype": snapshot.snapshot_type,
        "intervaltype": snapshot.snapshot_type, "state": snapshot.state,
        "volumeid": volume.uuid, "volumename": volume.name, "volumetype": snapshot.volume_type,
        "created": cs_date(snapshot.created), "zoneid": zone.uuid, "zonename": zone.name,
        "physicalsize": snapshot.physical_size, "virtualsize": snapshot.size,
        "revertable": snapshot.state == "BackedUp" and volume.removed is None,
        "locationtype": "SECONDARY", "datastoretype": "ImageStore",
        "osTypeId": template.os_type.uuid if template else None, "tags": tag_list(session, "Snapshot", snapshot.id),
        **owner_fields(session, snapshot.account_id, snapshot.domain_id),
    })


SNAPSHOT_POLICY_FIELDS = {
    "id": "the ID of the snapshot policy", "volumeid": "the ID of the disk volume",
    "schedule": "time the snapshot is scheduled to be taken", "intervaltype": "the interval type: 0 hourly, "
    "1 daily, 2 weekly, 3 monthly", "maxsnaps": "maximum number of snapshots retained",
    "timezone": "the time zone of the snapshot policy", "fordisplay": "is this policy for display to the regular user",
    "tags": "the resource tags",
}


def snapshot_policy_view(session: Session, policy: SnapshotPolicy) -> dict:
    return {
        "id": policy.uuid, "volumeid": policy.volume.uuid, "schedule": policy.schedule,
        "intervaltype": IntervalType.ORDER.index(policy.interval_type), "maxsnaps": policy.max_snaps,
        "timezone": policy.timezone, "fordisplay": policy.display, "tags": [],
    }


ISO_FIELDS = {**{k: v for k, v in TEMPLATE_FIELDS.items() if k not in ("templatetype", "passwordenabled")},
              "bootable": "true if the ISO is bootable"}


def iso_rows(session: Session, iso: Template, zone_id: int | None) -> list[dict]:
    """An ISO as CloudStack lists it: one row per zone, the template fields plus ``bootable``."""
    bootable = bool((iso.details or {}).get("bootable", True))
    return [{**row, "bootable": bootable} for row in template_rows(session, iso, zone_id)]


EXTRACT_FIELDS = {
    "id": "the ID of the extracted template", "name": "the name of the extracted template",
    "extractId": "the ID of the download link", "extractMode": "HTTP_DOWNLOAD", "state": "the link's state",
    "status": "the link's status", "uploadpercentage": "how much of the file is ready (100)",
    "url": "the URL the template can be downloaded from until the link expires",
    "zoneid": "the zone the template is extracted from", "zonename": "that zone's name",
    "accountid": "the ID of the account owning the template", "created": "the date the link was made",
    "storagetype": "the kind of store serving the file",
}


def extract_view(session: Session, template: Template, link, zone: Zone | None, url: str) -> dict:
    from core.model import Account

    account = session.get(Account, template.account_id)
    return compact({
        "id": template.uuid, "name": template.name, "extractId": link.uuid, "extractMode": "HTTP_DOWNLOAD",
        "state": "DOWNLOAD_URL_CREATED", "status": "DOWNLOAD_URL_CREATED", "uploadpercentage": 100, "url": url,
        "zoneid": zone.uuid if zone else None, "zonename": zone.name if zone else None,
        "accountid": account.uuid if account else None, "created": cs_date(link.created),
        "storagetype": "Image",
    })

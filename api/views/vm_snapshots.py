"""The view of a VM snapshot (CloudStack's VMSnapshotResponse)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.model import VmSnapshot

from .common import OWNER_FIELDS, compact, cs_date, owner_fields
from .identity import tag_list

VM_SNAPSHOT_FIELDS = {
    "id": "the ID of the vm snapshot", "name": "the name of the vm snapshot",
    "state": "the state of the vm snapshot", "description": "the description of the vm snapshot",
    "displayname": "the display name of the vm snapshot", "zoneid": "the Zone ID of the vm snapshot",
    "zonename": "the Zone name of the vm snapshot", "virtualmachineid": "the vm ID of the vm snapshot",
    "virtualmachinename": "the vm name of the vm snapshot", "parent": "the parent ID of the vm snapshot",
    "parentName": "the parent displayName of the vm snapshot", "current": "indicates if this is current snapshot",
    "type": "VM Snapshot type: Disk or DiskAndMemory", "created": "the create date of the vm snapshot",
    "hypervisor": "the type of hypervisor on which snapshot is stored", "tags": "the resource tags",
    **OWNER_FIELDS,
}


def vm_snapshot_view(session: Session, snapshot: VmSnapshot) -> dict:
    vm, parent = snapshot.vm, snapshot.parent
    return compact({
        "id": snapshot.uuid, "name": snapshot.name, "displayname": snapshot.display_name,
        "description": snapshot.description, "state": snapshot.state, "type": snapshot.snapshot_type,
        "current": snapshot.current, "created": cs_date(snapshot.created),
        "zoneid": vm.zone.uuid, "zonename": vm.zone.name,
        "virtualmachineid": vm.uuid, "virtualmachinename": vm.name,
        "parent": parent.uuid if parent is not None else None,
        "parentName": parent.display_name if parent is not None else None,
        "hypervisor": vm.hypervisor or vm.template.hypervisor, "tags": tag_list(session, "VMSnapshot", snapshot.id),
        **owner_fields(session, snapshot.account_id, snapshot.domain_id),
    })

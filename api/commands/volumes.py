"""Volume commands available in the foundation: listing. Creating, attaching and
resizing data volumes comes with the storage plugin's commands."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api.views.compute import VOLUME_FIELDS, volume_view
from core.commands import P, api_command
from core.model import VirtualMachine, Volume, Zone


@api_command("listVolumes", response="volume", is_list=True, response_fields=VOLUME_FIELDS,
             description="Lists all volumes.",
             params={"id": P.uuid("the ID of the volume"), "ids": P.list("the IDs of the volumes", item=P.uuid()),
                     "name": P.string("the name of the volume"), "type": P.string("ROOT or DATADISK"),
                     "virtualmachineid": P.uuid("the VM the volumes are attached to"),
                     "zoneid": P.uuid("the zone")})
def list_volumes(ctx, p):
    query = select(Volume).where(Volume.removed.is_(None),
                                 ctx.owner_filter(Volume, by_id="id" in p or "ids" in p))
    if "id" in p or "ids" in p:
        query = query.where(Volume.uuid.in_([p["id"]] if "id" in p else p["ids"]))
    if "name" in p:
        query = query.where(Volume.name == p["name"])
    if "type" in p:
        query = query.where(Volume.volume_type == p["type"].upper())
    if "virtualmachineid" in p:
        query = query.where(Volume.vm_id == ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid").id)
    if "zoneid" in p:
        query = query.where(Volume.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    query = query.options(selectinload(Volume.vm), selectinload(Volume.pool))
    total, volumes = ctx.page(query, name_column=Volume.name, order_by=Volume.id)
    admin = ctx.caller.role_type != "User"
    return total, [volume_view(ctx.session, v, admin=admin) for v in volumes]

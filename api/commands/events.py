"""Events: listEvents, listEventTypes, archiveEvents, deleteEvents.

Who sees which events follows CloudStack's owner rules (``listall``, ``account``,
``domainid``, ``isrecursive``): without them every caller, root admin included,
sees its own account's events.
"""

from __future__ import annotations

from sqlalchemy import delete, or_, select, update

from api.views.operations import EVENT_FIELDS, EVENT_TYPE_FIELDS, event_view
from core.commands import ALL_ROLES, SUCCESS, P, api_command
from core.model import Event

from .zones import choice, invalid

LEVELS = ("INFO", "WARN", "ERROR")

#: The event types Strato records. CloudStack's names (EventTypes.java) where CloudStack
#: has one; the rest, marked, are Strato's for changes CloudStack records no event for.
EVENT_TYPES = (
    "VM.CREATE", "VM.DESTROY", "VM.START", "VM.STOP", "VM.REBOOT", "VM.UPDATE", "VM.UPGRADE", "VM.MIGRATE",
    "VM.EXPUNGE", "VM.RECOVER", "VM.RESETPASSWORD",
    "VMSNAPSHOT.CREATE", "VMSNAPSHOT.DELETE", "VMSNAPSHOT.REVERTTO",
    "VOLUME.CREATE", "VOLUME.DELETE", "VOLUME.ATTACH", "VOLUME.DETACH", "VOLUME.RESIZE",
    "TEMPLATE.CREATE", "TEMPLATE.DELETE", "TEMPLATE.UPDATE", "TEMPLATE.DOWNLOAD.START",
    "TEMPLATE.DOWNLOAD.SUCCESS", "TEMPLATE.DOWNLOAD.FAILED",
    "ZONE.CREATE", "ZONE.EDIT", "ZONE.DELETE", "POD.CREATE", "POD.EDIT", "POD.DELETE",
    "MAINT.PREPARE", "MAINT.CANCEL", "MAINT.PREPARE.PS", "MAINT.CANCEL.PS",
    "UPDATE.PS", "ENABLE.PS", "DISABLE.PS",
    "SERVICE.OFFERING.CREATE", "SERVICE.OFFERING.EDIT", "SERVICE.OFFERING.DELETE",
    "DISK.OFFERING.CREATE", "DISK.OFFERING.EDIT", "DISK.OFFERING.DELETE",
    "CONFIGURATION.VALUE.EDIT",
    "ACCOUNT.CREATE", "USER.CREATE", "USER.LOGIN", "USER.LOGOUT", "DOMAIN.CREATE", "REGISTER.USER.KEY",
    "ACCOUNT.UPDATE", "ACCOUNT.DISABLE", "ACCOUNT.ENABLE", "ACCOUNT.DELETE", "USER.UPDATE", "USER.DISABLE",
    "USER.ENABLE", "USER.LOCK", "USER.DELETE", "DOMAIN.UPDATE", "DOMAIN.DELETE", "ROLE.CREATE", "ROLE.UPDATE",
    "ROLE.DELETE", "ROLE.PERMISSION.CREATE", "ROLE.PERMISSION.UPDATE", "ROLE.PERMISSION.DELETE", "PROJECT.CREATE",
    "PROJECT.UPDATE", "PROJECT.DELETE", "PROJECT.ACCOUNT.ADD", "PROJECT.ACCOUNT.REMOVE", "RESOURCE.LIMIT.UPDATE",
    "PROJECT.INVITATION.UPDATE", "PROJECT.INVITATION.REMOVE", "PROJECT.ROLE.CREATE",
    "PROJECT.ROLE.UPDATE", "PROJECT.ROLE.DELETE", "PROJECT.ROLE.PERMISSION.CREATE", "PROJECT.ROLE.PERMISSION.UPDATE",
    "PROJECT.ROLE.PERMISSION.DELETE",
    "PROJECT.USER.ADD", "PROJECT.USER.REMOVE",
    "CREATE_TAGS", "DELETE_TAGS",
    "SNAPSHOT.CREATE", "SNAPSHOT.DELETE", "SNAPSHOT.REVERT", "SNAPSHOTPOLICY.CREATE", "SNAPSHOTPOLICY.UPDATE",
    "SNAPSHOTPOLICY.DELETE", "VOLUME.MIGRATE", "ISO.CREATE", "ISO.DELETE", "TEMPLATE.COPY", "TEMPLATE.EXTRACT",
    "PHYSICAL.NETWORK.CREATE", "PHYSICAL.NETWORK.UPDATE", "PHYSICAL.NETWORK.DELETE", "TRAFFIC.TYPE.CREATE",
    "TRAFFIC.TYPE.UPDATE", "TRAFFIC.TYPE.DELETE", "NETWORK.SERVICE.PROVIDER.UPDATE", "NETWORK.OFFERING.CREATE",
    "NETWORK.OFFERING.EDIT", "NETWORK.OFFERING.DELETE", "NETWORK.CREATE", "NETWORK.UPDATE", "NETWORK.DELETE",
    "NETWORK.RESTART", "VLAN.IP.RANGE.CREATE", "VLAN.IP.RANGE.DELETE", "NET.IPASSIGN", "NET.IPRELEASE",
    "STATICNAT.ENABLE", "STATICNAT.DISABLE", "NET.RULEADD", "NET.RULEMODIFY", "NET.RULEDELETE", "FIREWALL.OPEN",
    "FIREWALL.CLOSE", "FIREWALL.EGRESS.OPEN", "FIREWALL.EGRESS.CLOSE", "LB.CREATE", "LB.UPDATE", "LB.DELETE",
    "LB.ASSIGN.TO.RULE", "LB.REMOVE.FROM.RULE", "LB.STICKINESSPOLICY.CREATE", "LB.STICKINESSPOLICY.DELETE",
    "VPN.REMOTE.ACCESS.CREATE", "VPN.REMOTE.ACCESS.DESTROY", "VPN.USER.ADD", "VPN.USER.REMOVE",
    "ROUTER.START", "ROUTER.STOP", "ROUTER.REBOOT", "NETWORK.ELEMENT.CONFIGURE",
    # Strato's own
    "ROUTER.ERROR",
    "CLUSTER.CREATE", "CLUSTER.UPDATE", "CLUSTER.DELETE", "HOST.ADD", "HOST.UPDATE", "HOST.DELETE",
    "STORAGE.POOL.CREATE", "STORAGE.POOL.DELETE", "IMAGE.STORE.ADD", "IMAGE.STORE.DELETE", "VM.UNMANAGED",
)


@api_command("listEvents", response="event", is_list=True, roles=ALL_ROLES, response_fields=EVENT_FIELDS, params={
    "id": P.uuid("the ID of the event"),
    "type": P.string("the event type (see listEventTypes)"),
    "level": P.string("the event level: INFO, WARN or ERROR"),
    "startdate": P.date("events from this date and time on (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss, UTC)"),
    "enddate": P.date("events up to this date and time (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss, UTC)"),
    "resourceid": P.uuid("the ID of the resource the events are about"),
    "resourcetype": P.string("the type of the resource the events are about"),
    "archived": P.boolean("true to list archived events instead"),
})
def list_events(ctx, p):
    """Lists events, newest first. ``keyword`` matches the type, level or description."""
    query = select(Event).where(Event.removed.is_(None), ctx.owner_filter(Event),
                                Event.archived.is_(p.get("archived", False)))
    if "id" in p:
        query = query.where(Event.uuid == p["id"])
    if "type" in p:
        query = query.where(Event.event_type == p["type"].strip().upper())
    if "level" in p:
        query = query.where(Event.level == choice(ctx, "level", p["level"], LEVELS))
    if "startdate" in p:
        query = query.where(Event.created >= p["startdate"])
    if "enddate" in p:
        end = p["enddate"]
        if (end.hour, end.minute, end.second) == (0, 0, 0):  # a bare date means the whole day
            end = end.replace(hour=23, minute=59, second=59)
        if "startdate" in p and end < p["startdate"]:
            raise invalid(ctx, "enddate", "the end date is before the start date")
        query = query.where(Event.created <= end)
    if "resourceid" in p:
        query = query.where(Event.resource_uuid == p["resourceid"])
    if "resourcetype" in p:
        query = query.where(Event.resource_type == p["resourcetype"])
    if p.get("keyword"):
        keyword = p["keyword"]
        query = query.where(or_(*(column.icontains(keyword, autoescape=True)
                                  for column in (Event.event_type, Event.level, Event.description))))
    total, events = ctx.page(query, order_by=Event.id.desc())
    return total, [event_view(ctx.session, event) for event in events]


@api_command("listEventTypes", response="eventtype", is_list=True, roles=ALL_ROLES,
             response_fields=EVENT_TYPE_FIELDS, params={})
def list_event_types(ctx, p):
    """Lists the event types: Strato's catalogue and any other type recorded (plugins may add their own)."""
    recorded = set(ctx.session.scalars(select(Event.event_type).distinct()))
    names = list(EVENT_TYPES) + sorted(recorded - set(EVENT_TYPES))
    return len(names), [{"name": name} for name in names]


_SELECT_EVENTS = {
    "ids": P.list("the IDs of the events", item=P.uuid()),
    "type": P.string("the event type"),
    "startdate": P.date("events from this date and time on (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss, UTC)"),
    "enddate": P.date("events up to this date and time (a bare date: the whole day)"),
}


def _chosen_events(ctx, p):
    """The events an archive/delete request names, among those of the caller's reach
    (``listall`` rules, as listEvents with listall=true); 431 when it names nothing."""
    if not any(name in p for name in _SELECT_EVENTS):
        raise invalid(ctx, "ids", "give ids, type, startdate or enddate")
    where = [Event.removed.is_(None), ctx.owner_filter(Event, by_id=True)]
    if "ids" in p:
        chosen = set(p["ids"])
        reachable = set(ctx.session.scalars(select(Event.uuid).where(Event.uuid.in_(chosen), *where)))
        if reachable != chosen:
            from core.errors import PermissionDenied

            raise PermissionDenied(f"Account {ctx.caller.account_name} may not change events "
                                   f"{', '.join(sorted(chosen - reachable))}")
        where.append(Event.uuid.in_(chosen))
    if "type" in p:
        where.append(Event.event_type == p["type"].strip().upper())
    if "startdate" in p:
        where.append(Event.created >= p["startdate"])
    if "enddate" in p:
        end = p["enddate"]
        if (end.hour, end.minute, end.second) == (0, 0, 0):
            end = end.replace(hour=23, minute=59, second=59)
        where.append(Event.created <= end)
    return where


@api_command("archiveEvents", response="success", roles=ALL_ROLES, params=_SELECT_EVENTS)
def archive_events(ctx, p):
    """Archives events: listEvents shows them only with archived=true."""
    ids = list(ctx.session.scalars(select(Event.id).where(*_chosen_events(ctx, p))))
    if ids:
        ctx.session.execute(update(Event).where(Event.id.in_(ids)).values(archived=True))
    return SUCCESS


@api_command("deleteEvents", response="success", roles=ALL_ROLES, params=_SELECT_EVENTS)
def delete_events(ctx, p):
    """Deletes events for good."""
    ids = list(ctx.session.scalars(select(Event.id).where(*_chosen_events(ctx, p))))
    if ids:
        ctx.session.execute(delete(Event).where(Event.id.in_(ids)))
    return SUCCESS

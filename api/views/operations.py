"""Views of events and global settings (CloudStack's EventResponse, EventTypeResponse,
ConfigurationResponse)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.model import Configuration, Event, User

from .common import OWNER_FIELDS, compact, cs_date, owner_fields

EVENT_FIELDS = {
    "id": "the ID of the event", "username": "the name of the user who performed the action",
    "type": "the type of the event (see listEventTypes)", "level": "the event level (INFO, WARN, ERROR)",
    "description": "a brief description of the event", "created": "the date the event was created",
    "state": "the state of the event", "resourceid": "the id of the resource the event is about",
    "resourcetype": "the type of the resource the event is about", "archived": "whether the event has been archived",
    **OWNER_FIELDS,
}


def event_view(session: Session, event: Event) -> dict:
    user = session.get(User, event.user_id) if event.user_id else None
    return compact({
        "id": event.uuid, "username": user.username if user else None, "type": event.event_type,
        "level": event.level, "description": event.description, "created": cs_date(event.created),
        "state": event.state, "resourceid": event.resource_uuid, "resourcetype": event.resource_type,
        "archived": event.archived, **owner_fields(session, event.account_id, event.domain_id),
    })


EVENT_TYPE_FIELDS = {"name": "the event type"}

CONFIGURATION_FIELDS = {
    "name": "the name of the configuration", "category": "the category of the configuration",
    "value": "the value of the configuration", "defaultvalue": "the default value of the configuration",
    "description": "the description of the configuration", "type": "the type of the configuration value",
    "isdynamic": "true if the configuration is dynamic (no restart needed)",
    "scope": "the scope of the value shown: global, cluster or storagepool",
    "id": "the id of the cluster or storage pool the value belongs to (scoped values only)",
}


def configuration_view(row: Configuration, *, value: str | None = None, scope: str = "global",
                       scope_uuid: str | None = None) -> dict:
    """A setting; for a cluster or pool ``scope``, ``value`` is that resource's own value."""
    return compact({
        "name": row.name, "category": row.category, "value": row.value if scope == "global" else value,
        "defaultvalue": row.default_value, "description": row.description, "type": row.value_type,
        "isdynamic": True, "scope": scope, "id": scope_uuid,
    })

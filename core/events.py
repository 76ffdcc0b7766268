"""Events (``listEvents``): what happened, by whom, to what.

An event is written in the same transaction as the change it describes, and
plugins hear of it (``strato_event_recorded``) only after that commit.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from .db import after_commit
from .model import Event


def record(session: Session, event_type: str, description: str, *, caller=None, resource=None,
           account_id: int | None = None, domain_id: int | None = None, level: str = "INFO",
           state: str = "Completed", plugins=None) -> Event:
    """Add an event row to ``session``'s transaction.

    The owner is ``resource``'s account when given, else ``account_id``, else the caller's.
    """
    if resource is not None and account_id is None:
        account_id = getattr(resource, "account_id", None)
        domain_id = getattr(resource, "domain_id", None)
    if account_id is None and caller is not None:
        account_id, domain_id = caller.account_id, caller.domain_id
    event = Event(
        event_type=event_type, description=description, level=level, state=state,
        account_id=account_id, domain_id=domain_id, user_id=caller.user_id if caller else None,
        resource_type=type(resource).__name__ if resource is not None else None,
        resource_uuid=getattr(resource, "uuid", None))
    session.add(event)
    if plugins is not None:
        session.flush()
        snapshot = {"id": event.uuid, "type": event_type, "level": level, "state": state,
                    "description": description, "resourceid": event.resource_uuid}
        after_commit(session, lambda: plugins.event_recorded(snapshot))
    return event

"""CloudStack's VM state machine.

Every transition is one UPDATE guarded by the VM's current state and
``version``: if another worker moved the VM first, the UPDATE matches nothing
and ``ConcurrentOperationError`` is raised, so two workers never move one VM at once.
"""

from __future__ import annotations

import enum

from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import after_commit
from ..errors import ConcurrentOperationError, InvalidParameterError
from ..model import VirtualMachine


class State(str, enum.Enum):
    STOPPED = "Stopped"
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    MIGRATING = "Migrating"
    DESTROYED = "Destroyed"
    EXPUNGING = "Expunging"
    ERROR = "Error"
    UNKNOWN = "Unknown"
    SHUTDOWN = "Shutdown"


class Event(str, enum.Enum):
    START_REQUESTED = "StartRequested"
    STOP_REQUESTED = "StopRequested"
    DESTROY_REQUESTED = "DestroyRequested"
    RECOVERY_REQUESTED = "RecoveryRequested"
    EXPUNGE_OPERATION = "ExpungeOperation"
    MIGRATION_REQUESTED = "MigrationRequested"
    OPERATION_SUCCEEDED = "OperationSucceeded"
    OPERATION_FAILED = "OperationFailed"
    OPERATION_FAILED_TO_ERROR = "OperationFailedToError"
    FOLLOW_AGENT_POWER_ON = "FollowAgentPowerOnReport"
    FOLLOW_AGENT_POWER_OFF = "FollowAgentPowerOffReport"
    AGENT_REPORT_MIGRATED = "AgentReportMigrated"


S, E = State, Event

#: (from, event) -> to; a subset of CloudStack's VirtualMachine.State machine
TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.STOPPED, E.START_REQUESTED): S.STARTING,
    (S.STOPPED, E.DESTROY_REQUESTED): S.DESTROYED,
    (S.STOPPED, E.STOP_REQUESTED): S.STOPPED,
    (S.STOPPED, E.OPERATION_FAILED): S.STOPPED,
    (S.STOPPED, E.OPERATION_FAILED_TO_ERROR): S.ERROR,
    (S.STOPPED, E.EXPUNGE_OPERATION): S.EXPUNGING,
    (S.STOPPED, E.FOLLOW_AGENT_POWER_ON): S.RUNNING,
    (S.STARTING, E.OPERATION_SUCCEEDED): S.RUNNING,
    (S.STARTING, E.OPERATION_FAILED): S.STOPPED,
    (S.STARTING, E.OPERATION_FAILED_TO_ERROR): S.ERROR,
    (S.STARTING, E.STOP_REQUESTED): S.STOPPING,
    (S.STARTING, E.FOLLOW_AGENT_POWER_ON): S.RUNNING,
    (S.STARTING, E.FOLLOW_AGENT_POWER_OFF): S.STOPPED,
    (S.RUNNING, E.STOP_REQUESTED): S.STOPPING,
    (S.RUNNING, E.MIGRATION_REQUESTED): S.MIGRATING,
    (S.RUNNING, E.FOLLOW_AGENT_POWER_OFF): S.STOPPED,
    (S.RUNNING, E.FOLLOW_AGENT_POWER_ON): S.RUNNING,
    (S.STOPPING, E.OPERATION_SUCCEEDED): S.STOPPED,
    (S.STOPPING, E.OPERATION_FAILED): S.RUNNING,
    (S.STOPPING, E.FOLLOW_AGENT_POWER_OFF): S.STOPPED,
    (S.STOPPING, E.FOLLOW_AGENT_POWER_ON): S.RUNNING,
    (S.MIGRATING, E.OPERATION_SUCCEEDED): S.RUNNING,
    (S.MIGRATING, E.OPERATION_FAILED): S.RUNNING,
    (S.MIGRATING, E.AGENT_REPORT_MIGRATED): S.RUNNING,
    (S.MIGRATING, E.FOLLOW_AGENT_POWER_OFF): S.STOPPED,
    (S.DESTROYED, E.RECOVERY_REQUESTED): S.STOPPED,
    (S.DESTROYED, E.EXPUNGE_OPERATION): S.EXPUNGING,
    (S.ERROR, E.DESTROY_REQUESTED): S.EXPUNGING,
    (S.ERROR, E.EXPUNGE_OPERATION): S.EXPUNGING,
    (S.EXPUNGING, E.EXPUNGE_OPERATION): S.EXPUNGING,
    (S.EXPUNGING, E.OPERATION_FAILED): S.EXPUNGING,
    (S.UNKNOWN, E.FOLLOW_AGENT_POWER_ON): S.RUNNING,
    (S.UNKNOWN, E.FOLLOW_AGENT_POWER_OFF): S.STOPPED,
    (S.SHUTDOWN, E.START_REQUESTED): S.STARTING,
    (S.SHUTDOWN, E.FOLLOW_AGENT_POWER_OFF): S.STOPPED,
}

#: states in which a job is moving the VM; recovery settles these after a crash
TRANSITIONAL = frozenset({S.STARTING, S.STOPPING, S.MIGRATING, S.EXPUNGING})
#: states in which the VM holds capacity on its host
ON_HOST = frozenset({S.STARTING, S.RUNNING, S.STOPPING, S.MIGRATING})


def next_state(current: str, event: Event) -> State:
    try:
        return TRANSITIONS[(State(current), event)]
    except KeyError:
        raise InvalidParameterError(
            f"a VM in state {current} cannot take {event.value}") from None


def transition(session: Session, vm: VirtualMachine, event: Event, plugins=None, **changes) -> State:
    """Move ``vm`` by ``event`` inside ``session``'s transaction, applying ``changes``
    (host_id and the like) in the same guarded UPDATE. Refreshes ``vm``.

    Raises ``InvalidParameterError`` for a transition the machine does not allow
    and ``ConcurrentOperationError`` when the VM changed under us.
    """
    old = vm.state
    new = next_state(old, event)
    result = session.execute(
        update(VirtualMachine)
        .where(VirtualMachine.id == vm.id, VirtualMachine.state == old, VirtualMachine.version == vm.version)
        .values(state=new.value, version=VirtualMachine.version + 1, **changes)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise ConcurrentOperationError(f"VM {vm.uuid} was changed by another operation; try again")
    session.refresh(vm)
    if plugins is not None and old != new.value:
        vm_uuid = vm.uuid
        after_commit(session, lambda: plugins.vm_state_changed(vm_uuid, old, new.value, event.value))
    return new

"""Every hook a plugin may implement, grouped by lifecycle.

Implement a hook with ``@core.hookimpl`` on a function in a module named by a
``strato.api`` entry point, or on a method of a driver class (drivers are
registered as plugins too). Each docstring says when the hook fires, whether it
runs inside the database transaction, what it returns, and whether the first
non-None result wins (firstresult). ``docs``-style meta-tests in
``tests/core/test_hookspecs.py`` fail when a hook here has no docstring or no test.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("strato")


# ---------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------


@hookspec(historic=True)
def strato_configure(settings):
    """Start-up, once, after every plugin is loaded and before the API serves.

    Historic: a plugin registered later still receives it. Outside any
    transaction. ``settings`` is the ``core.config.Settings``. Returns nothing.
    """


@hookspec
def strato_api_commands():
    """Start-up, when the API builds its command table; outside any transaction.

    Return a list of ``core.commands.ApiCommand`` (made with ``@api_command``) to
    add to the native API; they appear in ``listApis`` like built-in ones. A name
    that clashes with an existing command stops start-up. Results of all plugins
    are collected.
    """


@hookspec
def strato_configuration_keys():
    """Start-up, when global settings are seeded (before the seeding transaction opens).

    Return a list of ``core.globalconfig.ConfigKey``; each becomes a row shown by
    ``listConfigurations`` and changeable with ``updateConfiguration``. Results
    of all plugins are collected.
    """


# ---------------------------------------------------------------------------
# Placement
# ---------------------------------------------------------------------------


@hookspec
def strato_planner_avoid_hosts(request, candidates):
    """During deployment planning, after the core's own filters, inside the
    transaction that reserves capacity: must not block.

    ``request`` is a ``core.orchestration.planner.DeploymentRequest``;
    ``candidates`` the ``Host`` rows still in the running. Return an iterable of
    host ids to avoid (or None). The union over all plugins is avoided.
    """


# ---------------------------------------------------------------------------
# VM lifecycle
# ---------------------------------------------------------------------------


@hookspec
def strato_vm_state_changed(vm_uuid, old_state, new_state, reason):
    """After a VM state transition has been committed (outside the transaction).

    ``reason`` is the lifecycle event that caused it (``StartRequested``,
    ``OperationSucceeded``, ...). May block briefly; exceptions are logged and
    never undo the transition. Returns nothing.
    """


# ---------------------------------------------------------------------------
# Jobs and events
# ---------------------------------------------------------------------------


@hookspec
def strato_job_completed(job_uuid, command, status, result):
    """After an async job's final status is committed, in the worker that ran it.

    ``status`` is 1 (succeeded) or 2 (failed); ``result`` the job result dict.
    Outside the transaction. Returns nothing.
    """


@hookspec
def strato_event_recorded(event):
    """After an event row (``listEvents``) is committed; ``event`` is a dict with
    CloudStack's event fields. Outside the transaction. Returns nothing."""


# ---------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def strato_check_access(caller, command, resource):
    """Before a command acts on a resource, inside the command's transaction:
    must not block.

    ``caller`` is the calling ``core.access.Caller``, ``command`` the API name,
    ``resource`` the ORM row named by the request. Return True to allow, False
    to refuse (531), or None for no opinion; the first non-None answer wins, and
    with none the core's ownership rules decide.
    """

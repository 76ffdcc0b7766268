"""Removing accounts and domains with everything they own, through the normal operations.

``delete_account`` runs each registered cleaner (``register_cleaner``) for the account, in
order, then removes the account itself in one transaction: its users (their keys and
sessions), its project memberships and tags. Cleaners remove one kind of resource each,
through that kind's own orchestration (VMs are destroyed and expunged, templates deleted
from their stores), so capacity, limits and usage are given back as usual. A cleaner that
fails stops the deletion with its error: the account stays (disabled, so nobody uses it
meanwhile) and deleting it again carries on where it stopped.

Other resource families register the cleaner of what they create:

    identity.register_cleaner("volumes", delete_volumes_of, before="templates")

where ``delete_volumes_of(cloud, account_id)`` removes every live resource of that kind, and
add the module to ``CLEANER_MODULES``: every deletion imports those first, so the cleaners
and their order never depend on what the process happened to import.
"""

from __future__ import annotations

import importlib
import logging
from typing import Callable

import pluggy
from sqlalchemy import delete, select, update

from ..errors import InvalidParameterError
from ..model import (
    Account,
    AccountType,
    Domain,
    LoginSession,
    Project,
    ProjectAccount,
    ProjectInvitation,
    ProjectMemberRole,
    ProjectRole,
    ProjectRolePermission,
    ResourceTag,
    Template,
    User,
    VirtualMachine,
    utcnow,
)

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("strato")

Cleaner = Callable[[object, int], None]
#: (name, cleaner, the cleaner it must run before) in registration order
_CLEANERS: list[tuple[str, Cleaner, str | None]] = []
#: the modules that register cleaners when imported: loaded before any deletion, so what is
#: cleaned never depends on which modules the process happened to import (add yours here)
CLEANER_MODULES = ("core.orchestration.volumes", "core.orchestration.snapshots",
                   "core.orchestration.vm_snapshots", "core.orchestration.networking")


def register_cleaner(name: str, cleaner: Cleaner, *, before: str | None = None) -> None:
    """Add ``cleaner(cloud, account_id)`` to what ``delete_account`` runs (once per name),
    at the end or before the cleaner called ``before`` (whichever was registered first)."""
    if not any(existing == name for existing, _, _ in _CLEANERS):
        _CLEANERS.append((name, cleaner, before))


def _ordered() -> list[tuple[str, Cleaner]]:
    """The cleaners in running order: each right before its ``before`` (a ``before`` that is not
    registered: at the end), the others in registration order; independent of import order."""
    for module in CLEANER_MODULES:
        importlib.import_module(module)
    modules = (__name__, *CLEANER_MODULES)  # as if imported in this order, whatever the process did
    entries = sorted(_CLEANERS, key=lambda entry: modules.index(entry[1].__module__)
                     if entry[1].__module__ in modules else len(modules))
    order = [(name, cleaner) for name, cleaner, before in entries if before is None]
    waiting = [entry for entry in entries if entry[2] is not None]
    while waiting:
        names = [name for name, _ in order]
        placed = [entry for entry in waiting if entry[2] in names]
        if not placed:  # their ``before`` does not exist: at the end
            order += [(name, cleaner) for name, cleaner, _ in waiting]
            break
        for name, cleaner, before in placed:
            order.insert([n for n, _ in order].index(before), (name, cleaner))
        waiting = [entry for entry in waiting if entry not in placed]
    return order


def cleaners() -> list[str]:
    return [name for name, _ in _ordered()]


def _destroy_vms(cloud, account_id: int) -> None:
    from . import vm as vm_ops

    with cloud.db.transaction() as session:
        uuids = list(session.scalars(select(VirtualMachine.uuid).where(
            VirtualMachine.account_id == account_id, VirtualMachine.removed.is_(None))))
    for vm_uuid in uuids:
        vm_ops.destroy(cloud, vm_uuid, expunge=True)


def _delete_templates(cloud, account_id: int) -> None:
    from . import templates as template_ops

    with cloud.db.transaction() as session:
        uuids = list(session.scalars(select(Template.uuid).where(Template.account_id == account_id,
                                                                 Template.removed.is_(None))))
    for template_uuid in uuids:
        template_ops.delete(cloud, template_uuid)


register_cleaner("vms", _destroy_vms)
register_cleaner("templates", _delete_templates)


def delete_account(cloud, account_uuid: str) -> None:
    """Remove the account and everything it owns (see the module docstring). Safe to repeat."""
    with cloud.db.transaction() as session:
        account = session.scalar(select(Account).where(Account.uuid == account_uuid))
        if account is None:
            raise InvalidParameterError(f"account {account_uuid} does not exist")
        if account.removed is not None:
            return
        account_id = account.id
    for name, cleaner in _ordered():
        log.info("deleting account %s: %s", account_uuid, name)
        cleaner(cloud, account_id)
    with cloud.db.transaction() as session:
        finish_account(session, session.get(Account, account_id), plugins=cloud.plugins)


def finish_account(session, account: Account, plugins=None) -> None:
    """Remove the account row and what hangs off it (users, keys, sessions, memberships,
    invitations, tags);
    in the caller's transaction. Resources must be gone already."""
    from ..events import record

    now = utcnow()
    users = list(session.scalars(select(User.id).where(User.account_id == account.id)))
    if users:
        session.execute(delete(LoginSession).where(LoginSession.user_id.in_(users)))
    session.execute(update(User).where(User.account_id == account.id, User.removed.is_(None)).values(
        removed=now, removed_marker=User.id, api_key=None, secret_key=None, state="disabled"))
    session.execute(delete(ProjectAccount).where(ProjectAccount.account_id == account.id))
    session.execute(delete(ProjectInvitation).where(ProjectInvitation.account_id == account.id))
    session.execute(delete(ResourceTag).where(ResourceTag.account_id == account.id))
    account.removed, account.removed_marker, account.state = now, account.id, "disabled"
    if account.account_type != AccountType.PROJECT:
        record(session, "ACCOUNT.DELETE", f"Deleted account {account.name}", resource=account, plugins=plugins)


def forget_user(session, user: User) -> None:
    """Remove ``user``'s own project memberships (an Admin's gives its account's project count
    back) and the invitations made for it; in the caller's transaction (deleteUser's)."""
    from . import limits

    for member in session.scalars(select(ProjectAccount).where(ProjectAccount.user_id == user.id)):
        if member.role == ProjectMemberRole.ADMIN:
            limits.release(session, member.account_id, limits.ResourceType.PROJECT, 1)
        session.delete(member)
    session.execute(delete(ProjectInvitation).where(ProjectInvitation.user_id == user.id))


def delete_project(cloud, project_uuid: str) -> None:
    """Remove the project's resources (the cleaners, on its account), its members, invitations,
    project roles and itself."""
    with cloud.db.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == project_uuid))
        if project is None or project.removed is not None:
            return
        account_id = project.project_account_id
    for name, cleaner in _ordered():
        cleaner(cloud, account_id)
    with cloud.db.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == project_uuid))
        from . import limits

        admins = list(session.scalars(select(ProjectAccount.account_id).where(
            ProjectAccount.project_id == project.id, ProjectAccount.role == ProjectMemberRole.ADMIN)))
        for admin_id in admins:
            limits.release(session, admin_id, limits.ResourceType.PROJECT, 1)
        for model in (ProjectAccount, ProjectInvitation, ProjectRolePermission, ProjectRole):
            session.execute(delete(model).where(model.project_id == project.id))
        finish_account(session, session.get(Account, account_id), plugins=cloud.plugins)
        project.removed, project.removed_marker, project.state = utcnow(), project.id, "Disabled"
        from ..events import record

        record(session, "PROJECT.DELETE", f"Deleted project {project.name}", resource=project,
               account_id=account_id, domain_id=project.domain_id, plugins=cloud.plugins)


def delete_domain(cloud, domain_uuid: str, *, cleanup: bool = True) -> None:
    """Remove the domain, every domain below it and every account in them. Without ``cleanup``
    the domain must hold no live account or subdomain (536 otherwise, checked as it goes)."""
    with cloud.db.transaction() as session:
        domain = session.scalar(select(Domain).where(Domain.uuid == domain_uuid))
        if domain is None or domain.removed is not None:
            return
        if not cleanup:
            check_empty(session, domain)
        subtree = list(session.scalars(select(Domain).where(Domain.path.startswith(domain.path),
                                                            Domain.removed.is_(None))))
        domain_ids = [d.id for d in subtree]
        projects = list(session.scalars(select(Project.uuid).where(Project.domain_id.in_(domain_ids),
                                                                   Project.removed.is_(None))))
        accounts = list(session.scalars(select(Account.uuid).where(
            Account.domain_id.in_(domain_ids), Account.removed.is_(None), Account.account_type != AccountType.PROJECT)))
    for project_uuid in projects:
        delete_project(cloud, project_uuid)
    for account_uuid in accounts:
        delete_account(cloud, account_uuid)
    with cloud.db.transaction() as session:
        from ..events import record

        if not cleanup:
            check_empty(session, session.get(Domain, domain.id))
        now = utcnow()
        for each in sorted(session.scalars(select(Domain).where(Domain.id.in_(domain_ids))),
                           key=lambda d: -d.level):
            each.removed, each.state = now, "Inactive"
            record(session, "DOMAIN.DELETE", f"Deleted domain {each.path}", resource=each, plugins=cloud.plugins)


def check_empty(session, domain: Domain) -> None:
    from sqlalchemy import func

    from ..errors import ResourceInUseError

    children = session.scalar(select(func.count(Domain.id)).where(Domain.parent_id == domain.id,
                                                                  Domain.removed.is_(None)))
    accounts = session.scalar(select(func.count(Account.id)).where(Account.domain_id == domain.id,
                                                                   Account.removed.is_(None)))
    if children or accounts:
        raise ResourceInUseError(f"Domain {domain.name} still has {accounts} account(s) and {children} "
                                 f"subdomain(s); delete them first or pass cleanup=true")


class TagCleanup:
    """Built-in plugin: a resource's tags go when the resource does (its removal's event)."""

    REMOVALS = {"VM.EXPUNGE": ("UserVm",), "VOLUME.DELETE": ("Volume",), "TEMPLATE.DELETE": ("Template", "ISO"),
                "NETWORK.DELETE": ("Network",), "PROJECT.DELETE": ("Project",), "SNAPSHOT.DELETE": ("Snapshot",),
                "NET.IPRELEASE": ("PublicIpAddress",), "VMSNAPSHOT.DELETE": ("VMSnapshot",)}

    def __init__(self, cloud):
        self.cloud = cloud

    @hookimpl
    def strato_event_recorded(self, event):
        types = self.REMOVALS.get(event.get("type"))
        # only a removal that happened: not a command's Scheduled event, nor a WARN "could not delete"
        if not types or not event.get("resourceid") or event.get("state") != "Completed" \
                or event.get("level") != "INFO":
            return
        with self.cloud.db.transaction() as session:
            session.execute(delete(ResourceTag).where(ResourceTag.resource_type.in_(types),
                                                      ResourceTag.resource_uuid == event["resourceid"]))


__all__ = ["TagCleanup", "check_empty", "register_cleaner", "cleaners", "delete_account", "delete_project", "delete_domain", "finish_account"]

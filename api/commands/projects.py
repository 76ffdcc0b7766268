"""Projects: createProject, listProjects, updateProject, deleteProject, addAccountToProject,
listProjectAccounts, deleteAccountFromProject, addUserToProject, deleteUserFromProject, and invitations: listProjectInvitations,
updateProjectInvitation, deleteProjectInvitation.

A project owns its resources through its own account (type 5, ``Project.project_account``):
``projectid`` on a create command makes the project that account's owner, and on a list
command lists the project's resources (``core.access``). Members are accounts, or single users
(addUserToProject: that user acts in the project, the other users of its account do not), Admin or
Regular; members use the project's resources, admins also change the project and its
membership. Domain admins above the project's domain and root admins may do both. A Regular
member may also have a project role (``project_roles``) restricting what it may call there.
An Admin's projects count against its project limit.

With ``project.invite.required`` false (the default) addAccountToProject adds the account at
once; with true it invites the account (or an email address, accepted with a token) and the
invitee accepts or declines with updateProjectInvitation, within ``project.invite.timeout``
seconds. An email invitation's token is mailed through ``project.smtp.*`` by the command's job.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import smtplib
import string

from sqlalchemy import delete, or_, select, update

from api.views.identity import (
    PROJECT_ACCOUNT_FIELDS,
    PROJECT_FIELDS,
    PROJECT_INVITATION_FIELDS,
    project_account_view,
    project_invitation_view,
    project_view,
)
from core import roles
from core.access import INVITE_TIMEOUT_MAX, can_reach, domain_ids_under, find_project, memberships_of
from core.commands import ALL_ROLES, PAGING_PARAMS, SUCCESS, P, api_command
from core.errors import InvalidParameterError, PermissionDenied, ResourceInUseError, ResourceUnavailableError
from core.jobs import job_handler
from core.model import (
    Account,
    AccountType,
    Domain,
    Project,
    InvitationState,
    ProjectAccount,
    ProjectInvitation,
    ProjectMemberRole,
    ProjectRole,
    Template,
    User,
    VirtualMachine,
    Volume,
    new_uuid,
    utcnow,
)
from core.orchestration import identity, limits

from .accounts import check_domain
from .zones import choice, invalid

log = logging.getLogger(__name__)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _render(session, project_uuid: str) -> dict:
    project = session.scalar(select(Project).where(Project.uuid == project_uuid))
    return {"project": project_view(session, project)}


def _member_account(ctx, project: Project, name: str, domain_uuid: str | None) -> Account:
    """The account ``name`` (of ``domainid``, default the project's domain)."""
    domain = ctx.get(Domain, domain_uuid, "domainid") if domain_uuid else project.domain
    account = ctx.session.scalar(select(Account).where(
        Account.name == name.strip(), Account.domain_id == domain.id, Account.removed.is_(None),
        Account.account_type != AccountType.PROJECT))
    if account is None:
        raise invalid(ctx, "account", f"domain {domain.name} has no account named {name}")
    return account


@api_command("createProject", response="project", is_async=True, roles=ALL_ROLES, response_fields=PROJECT_FIELDS,
             since="3.0.0", params={
                 "name": P.string("name of the project", required=True),
                 "displaytext": P.string("display text of the project (default: the name)", max_length=4096),
                 "account": P.string("the account owning the project (admins; with domainid)"),
                 "domainid": P.uuid("the domain of the project and of that account"),
             })
def create_project(ctx, p):
    """Creates a project owned (as its first Admin) by the caller's account or, for admins, ``account``."""
    caller = ctx.caller
    if "account" in p:
        if not (caller.is_root_admin or caller.is_domain_admin):
            raise PermissionDenied("only admins may create projects for other accounts")
        if "domainid" not in p:
            raise InvalidParameterError("account must be given with domainid")
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid"))
        owner = ctx.session.scalar(select(Account).where(Account.name == p["account"], Account.domain_id == domain.id,
                                                         Account.removed.is_(None),
                                                         Account.account_type != AccountType.PROJECT))
        if owner is None:
            raise invalid(ctx, "account", f"domain {domain.name} has no account named {p['account']}")
    else:
        owner = ctx.session.get(Account, caller.account_id)
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid")) if "domainid" in p else owner.domain
        if domain.id != owner.domain_id and not domain.path.startswith(owner.domain.path):
            raise invalid(ctx, "domainid", "a project belongs to its owner's domain or one below it")
    name = p["name"].strip()
    if not name:
        raise invalid(ctx, "name", "must not be empty")
    if ctx.session.scalar(select(Project.id).where(Project.name == name, Project.domain_id == domain.id,
                                                   Project.removed.is_(None))):
        raise invalid(ctx, "name", f"A project named {name} already exists in domain {domain.name}")
    limits.reserve(ctx.session, owner, limits.ResourceType.PROJECT, 1)  # 532 past max.account.projects
    project_uuid = new_uuid()
    account = Account(name=project_account_name(name, project_uuid), account_type=AccountType.PROJECT,
                      domain_id=domain.id, role_id=roles.default_role(ctx.session, "User").id)
    ctx.session.add(account)
    ctx.session.flush()
    limits.ensure_rows(ctx.session, account_id=account.id)
    project = Project(uuid=project_uuid, name=name, display_text=p.get("displaytext") or name, domain_id=domain.id,
                      project_account_id=account.id, state="Disabled")
    ctx.session.add(project)
    ctx.session.flush()
    ctx.session.add(ProjectAccount(project_id=project.id, account_id=owner.id, role=ProjectMemberRole.ADMIN))
    ctx.event("PROJECT.CREATE", f"Created project {name}", project, account_id=owner.id, domain_id=domain.id)
    return ctx.start_job("project.activate", {"project": project.uuid}, instance=project, instance_type="Project")


def project_account_name(name: str, project_uuid: str) -> str:
    """The name of a project's own account, "PrjAcct-<name>-<uuid8>": the uuid part keeps it unique,
    so the name part is cut to keep the whole within the 255 characters of ``Account.name``."""
    suffix = f"-{project_uuid[:8]}"
    return f"PrjAcct-{name}"[:255 - len(suffix)] + suffix


@job_handler("project.activate")
def activate_job(ctx):
    """The second half of createProject, as CloudStack's: the project made Disabled becomes Active."""
    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        if project.state == "Disabled" and project.removed is None:
            project.state = "Active"
        return _render(session, project.uuid)


@api_command("listProjects", response="project", is_list=True, roles=ALL_ROLES, response_fields=PROJECT_FIELDS,
             since="3.0.0", params={
                 "id": P.uuid("the ID of the project"), "name": P.string("the name of the project"),
                 "displaytext": P.string("the display text of the project"),
                 "state": P.string("the state of the project"),
             })
def list_projects(ctx, p):
    """Lists the projects the caller's account is a member of; admins with ``listall`` (or an id)
    also those of the domains they reach; ``account`` narrows to that account's projects."""
    caller = ctx.caller
    member_of = select(ProjectAccount.project_id).where(memberships_of(caller))
    query = select(Project).where(Project.removed.is_(None))
    listall = p.get("listall") or "id" in p
    if "account" in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid")) if "domainid" in p else \
            ctx.session.get(Domain, caller.domain_id)
        account = ctx.session.scalar(select(Account).where(Account.name == p["account"], Account.domain_id == domain.id,
                                                           Account.removed.is_(None)))
        if account is None or (account.id != caller.account_id and not (caller.is_root_admin or caller.is_domain_admin)):
            raise PermissionDenied(f"Account {caller.account_name} may not list the projects of {p['account']}")
        query = query.where(Project.id.in_(select(ProjectAccount.project_id).where(
            ProjectAccount.account_id == account.id)))
    elif caller.is_root_admin and listall:
        pass
    elif caller.is_domain_admin and listall:
        query = query.where(or_(Project.domain_id.in_(domain_ids_under(ctx.session, caller.domain_path)),
                                Project.id.in_(member_of)))
    else:
        query = query.where(Project.id.in_(member_of))
    if "domainid" in p and "account" not in p:
        domain = check_domain(ctx, ctx.get(Domain, p["domainid"], "domainid"))
        ids = domain_ids_under(ctx.session, domain.path) if p.get("isrecursive") else [domain.id]
        query = query.where(Project.domain_id.in_(ids))
    for param, column in (("id", Project.uuid), ("name", Project.name), ("displaytext", Project.display_text)):
        if param in p:
            query = query.where(column == p[param])
    if "state" in p:
        query = query.where(Project.state == choice(ctx, "state", p["state"], ("Active", "Disabled", "Suspended")))
    total, rows = ctx.page(query, name_column=Project.name, order_by=Project.id)
    return total, [project_view(ctx.session, project) for project in rows]


@api_command("updateProject", response="project", is_async=True, roles=ALL_ROLES, response_fields=PROJECT_FIELDS,
             since="3.0.0", params={
                 "id": P.uuid("the ID of the project", required=True),
                 "displaytext": P.string("the new display text of the project", max_length=4096),
                 "name": P.string("the new name of the project"),
                 "account": P.string("the member to make the project's owner (or, with swapowner=false, to give "
                                     "roletype)"),
                 "userid": P.uuid("the user member to make the project's owner (or, with swapowner=false, to give "
                                  "roletype)"),
                 "roletype": P.string("with account or userid and swapowner=false: the member's new role, Admin or "
                                      "Regular"),
                 "swapowner": P.boolean("with account or userid: the other admins become Regular members (default "
                                        "true)"),
             })
def update_project(ctx, p):
    """Renames a project, changes its display text, its owner, or a member's role (an account's with
    ``account``, a user member's with ``userid``; project admins and admins)."""
    project = find_project(ctx.session, ctx.caller, p["id"], admin=True, param="id")
    if "name" in p and p["name"].strip() != project.name and ctx.session.scalar(select(Project.id).where(
            Project.name == p["name"].strip(), Project.domain_id == project.domain_id, Project.removed.is_(None))):
        raise invalid(ctx, "name", f"A project named {p['name']} already exists in the domain")
    if "account" in p and "userid" in p:
        raise InvalidParameterError("Account name and User ID are mutually exclusive. Provide either Account name "
                                    "to update Account or user ID to update the user of the project")
    member, swap, role = None, p.get("swapowner", True), ProjectMemberRole.ADMIN
    if "account" in p:
        owner = _member_account(ctx, project, p["account"], None)
        member = _membership(ctx.session, project, owner)
        if member is None:
            raise invalid(ctx, "account", f"Account {owner.name} doesn't belong to the project. Add it to the "
                                          f"project first and then change the project's ownership")
    elif "userid" in p:
        user = _project_user(ctx, project, user_uuid=p["userid"])
        member = _user_membership(ctx.session, project, user)
        if member is None:
            raise invalid(ctx, "userid", f"User {user.username} doesn't belong to the project. Add it to the "
                                         f"project first and then change the project's ownership")
    if member is not None and not swap:
        role = choice(ctx, "roletype", p.get("roletype") or "", ProjectMemberRole.ALL)
        if role != ProjectMemberRole.ADMIN and _admin_rows(ctx.session, project) == [member.id]:
            raise invalid(ctx, "roletype", "Cannot demote the only admin of the project")
    return ctx.start_job("project.update", {
        "project": project.uuid, "name": (p.get("name") or "").strip() or None, "displaytext": p.get("displaytext"),
        "member": member.id if member else None, "swapowner": swap, "role": role},
        instance=project, instance_type="Project")


@job_handler("project.update")
def update_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        if ctx.params["name"]:
            project.name = ctx.params["name"]
        if ctx.params["displaytext"] is not None:
            project.display_text = ctx.params["displaytext"]
        if ctx.params["member"]:
            member = session.get(ProjectAccount, ctx.params["member"])
            if member is None or member.project_id != project.id:
                raise InvalidParameterError("The member doesn't belong to the project any more")
            if ctx.params["swapowner"]:
                for other in session.scalars(select(ProjectAccount).where(
                        ProjectAccount.project_id == project.id, ProjectAccount.role == ProjectMemberRole.ADMIN,
                        ProjectAccount.id != member.id)):
                    set_role(session, other, ProjectMemberRole.REGULAR)
            set_role(session, member, ctx.params.get("role") or ProjectMemberRole.ADMIN)
        session.flush()
        record(session, "PROJECT.UPDATE", f"Updated project {project.name}", caller=ctx.caller,
               account_id=project.project_account_id, domain_id=project.domain_id, resource=project,
               plugins=ctx.cloud.plugins)
        return _render(session, project.uuid)


def _membership(session, project: Project, account: Account) -> ProjectAccount | None:
    """The account's own membership (not one of its users')."""
    return session.scalar(select(ProjectAccount).where(ProjectAccount.project_id == project.id,
                                                       ProjectAccount.account_id == account.id,
                                                       ProjectAccount.user_id.is_(None)))


def _user_membership(session, project: Project, user: User) -> ProjectAccount | None:
    return session.scalar(select(ProjectAccount).where(ProjectAccount.project_id == project.id,
                                                       ProjectAccount.user_id == user.id))


def _user_members_of(session, project: Project, account: Account) -> list[str]:
    return list(session.scalars(select(User.username).join(ProjectAccount, ProjectAccount.user_id == User.id).where(
        ProjectAccount.project_id == project.id, ProjectAccount.account_id == account.id)))


def set_role(session, member: ProjectAccount, role: str) -> None:
    """Give ``member`` its role in the project; an Admin's projects count against its project
    limit (532 past it), as the owner's does at createProject."""
    if member.role != role:
        if role == ProjectMemberRole.ADMIN:
            limits.reserve(session, session.get(Account, member.account_id), limits.ResourceType.PROJECT, 1)
        elif member.role == ProjectMemberRole.ADMIN:
            limits.release(session, member.account_id, limits.ResourceType.PROJECT, 1)
    member.role = role


def add_member(session, project: Project, account: Account, role: str, project_role_id: int | None,
               user: User | None = None) -> None:
    """Make ``account`` (with ``user``: only that user of it) a member of ``project`` (nothing
    when it is one already). An account and its users are never members side by side: the
    commands refuse that with 431."""
    if user is None and _user_members_of(session, project, account) or user is not None and _membership(
            session, project, account) is not None:
        raise InvalidParameterError(f"account {account.name} and its users cannot both be members of project "
                                    f"{project.name}")
    if (_membership(session, project, account) if user is None else _user_membership(session, project, user)) is None:
        member = ProjectAccount(project_id=project.id, account_id=account.id, role=ProjectMemberRole.REGULAR,
                                project_role_id=project_role_id, user_id=user.id if user else None,
                                user_marker=user.id if user else 0)
        session.add(member)
        set_role(session, member, role)


@api_command("deleteProject", response="success", is_async=True, roles=ALL_ROLES, since="3.0.0",
             description="Deletes a project; with cleanup, also everything it owns (else it must own nothing).",
             params={"id": P.uuid("the ID of the project", required=True),
                     "cleanup": P.boolean("true: delete the project's resources too")})
def delete_project(ctx, p):
    project = find_project(ctx.session, ctx.caller, p["id"], admin=True, param="id")
    if not p.get("cleanup"):
        owned = [kind for kind, model in (("VMs", VirtualMachine), ("volumes", Volume), ("templates", Template))
                 if ctx.session.scalar(select(model.id).where(model.account_id == project.project_account_id,
                                                              model.removed.is_(None)).limit(1))]
        if owned:
            raise ResourceInUseError(f"Project {project.name} still owns {', '.join(owned)}; delete them first or "
                                     f"pass cleanup=true")
    project.state = "Disabled"  # no new resources while it goes
    return ctx.start_job("project.delete", {"project": project.uuid}, instance=project, instance_type="Project")


@job_handler("project.delete")
def delete_job(ctx):
    identity.delete_project(ctx.cloud, ctx.params["project"])
    return SUCCESS


@api_command("addAccountToProject", response="success", is_async=True, roles=ALL_ROLES, since="3.0.0", params={
    "projectid": P.uuid("the ID of the project", required=True),
    "account": P.string("the name of the account to add (of the project's domain)"),
    "email": P.string("email address to send the invitation to (project.invite.required)"),
    "roletype": P.string("the account's role in the project: Admin or Regular (default)"),
    "projectroleid": P.uuid("a project role restricting what the account may call in the project"),
})
def add_account_to_project(ctx, p):
    """Makes an account of the project's domain a member of the project (project admins and admins);
    with ``project.invite.required`` invites it (or ``email``) instead."""
    project = find_project(ctx.session, ctx.caller, p["projectid"], admin=True)
    if project.state != "Active":
        raise invalid(ctx, "projectid", f"Can't add account to the specified project id in state={project.state} "
                                        f"as it's no longer active")
    from .project_roles import project_role_of

    project_role = project_role_of(ctx, project, p["projectroleid"], "projectroleid") if "projectroleid" in p else None
    account = _member_account(ctx, project, p["account"], None) if p.get("account") else None
    if account is not None and _membership(ctx.session, project, account) is not None:
        raise invalid(ctx, "account", f"account {account.name} is already a member of project {project.name}")
    if account is not None and (users := _user_members_of(ctx.session, project, account)):
        raise invalid(ctx, "account", f"users {', '.join(users)} of account {account.name} are members of project "
                                      f"{project.name}: remove them (deleteUserFromProject) to add the whole account")
    role = choice(ctx, "roletype", p.get("roletype") or ProjectMemberRole.REGULAR, ProjectMemberRole.ALL)
    if ctx.cloud.config.get(ctx.session, "project.invite.required"):
        if account is None and not (p.get("email") or "").strip():
            raise InvalidParameterError("Either accountName or email is required")
        return _invite(ctx, project, account, _email(ctx, p) if account is None else None, role, project_role)
    if account is None:
        raise InvalidParameterError("Account information is required for assigning account to the project")
    return ctx.start_job("project.add_member", {
        "project": project.uuid, "account": account.uuid, "role": role,
        "project_role": project_role.uuid if project_role else None}, instance=project, instance_type="Project")


@job_handler("project.add_member")
def add_member_job(ctx):
    """Adds the account (or, with ``user``, that one user of it) to the project."""
    from core.events import record

    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        user = session.scalar(select(User).where(User.uuid == ctx.params["user"])) if ctx.params.get("user") else None
        account = user.account if user else session.scalar(select(Account).where(
            Account.uuid == ctx.params["account"]))
        project_role = session.scalar(select(ProjectRole).where(ProjectRole.uuid == ctx.params.get("project_role"))) \
            if ctx.params.get("project_role") else None
        add_member(session, project, account, ctx.params["role"], project_role.id if project_role else None,
                   user=user)
        event, who = ("PROJECT.USER.ADD", f"user {user.username}") if user else \
            ("PROJECT.ACCOUNT.ADD", f"account {account.name}")
        record(session, event, f"Added {who} to project {project.name}",
               caller=ctx.caller, account_id=project.project_account_id, domain_id=project.domain_id,
               resource=project, plugins=ctx.cloud.plugins)
    return SUCCESS


@api_command("deleteAccountFromProject", response="success", is_async=True, roles=ALL_ROLES, since="3.0.0", params={
    "projectid": P.uuid("the ID of the project", required=True),
    "account": P.string("the name of the account to remove", required=True),
})
def delete_account_from_project(ctx, p):
    """Removes a member from a project; the last Admin cannot be removed."""
    project = find_project(ctx.session, ctx.caller, p["projectid"], admin=True)
    account = _member_account(ctx, project, p["account"], None)
    member = ctx.session.scalar(select(ProjectAccount).where(ProjectAccount.project_id == project.id,
                                                             ProjectAccount.account_id == account.id))
    if member is None:
        raise invalid(ctx, "account", f"account {account.name} is not a member of project {project.name}")
    if member.role == ProjectMemberRole.ADMIN and len(_admins(ctx.session, project)) == 1:
        raise InvalidParameterError(f"account {account.name} is the only admin of project {project.name}: make "
                                    f"another account its owner first")
    return ctx.start_job("project.remove_account", {"project": project.uuid, "account": account.uuid},
                         instance=project, instance_type="Project")


def _admin_rows(session, project: Project) -> list[int]:
    """Ids of the project's Admin memberships (accounts' and users')."""
    return list(session.scalars(select(ProjectAccount.id).where(ProjectAccount.project_id == project.id,
                                                                ProjectAccount.role == ProjectMemberRole.ADMIN)))


def _admins(session, project: Project) -> list[int]:
    return list(session.scalars(select(ProjectAccount.account_id).where(ProjectAccount.project_id == project.id,
                                                                        ProjectAccount.role == ProjectMemberRole.ADMIN)))


@job_handler("project.remove_account")
def remove_account_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        account = session.scalar(select(Account).where(Account.uuid == ctx.params["account"]))
        member = session.scalar(select(ProjectAccount).where(ProjectAccount.project_id == project.id,
                                                             ProjectAccount.account_id == account.id))
        if member is not None:
            if member.role == ProjectMemberRole.ADMIN and _admins(session, project) == [account.id]:
                raise InvalidParameterError(f"account {account.name} is the only admin of project {project.name}")
            set_role(session, member, ProjectMemberRole.REGULAR)  # gives its project count back
            session.delete(member)
        record(session, "PROJECT.ACCOUNT.REMOVE", f"Removed account {account.name} from project {project.name}",
               caller=ctx.caller, account_id=project.project_account_id, domain_id=project.domain_id,
               resource=project, plugins=ctx.cloud.plugins)
    return SUCCESS


def _project_user(ctx, project: Project, *, username: str | None = None, user_uuid: str | None = None) -> User:
    """A live user of a (non-project) account of the project's domain, by name or id; 431 otherwise."""
    query = select(User).join(Account, Account.id == User.account_id).where(
        User.removed.is_(None), Account.removed.is_(None), Account.account_type != AccountType.PROJECT,
        Account.domain_id == project.domain_id)
    if username is not None:
        user = ctx.session.scalar(query.where(User.username == username.strip()))
        if user is None:
            raise invalid(ctx, "username", f"domain {project.domain.name} has no user named {username}")
    else:
        user = ctx.session.scalar(query.where(User.uuid == user_uuid))
        if user is None:
            raise invalid(ctx, "userid", f"Unable to find user {user_uuid} in domain {project.domain.name}")
    return user


@api_command("addUserToProject", response="success", is_async=True, roles=ALL_ROLES, since="4.15.0", params={
    "projectid": P.uuid("ID of the project to add the user to", required=True),
    "username": P.string("Name of the user to be added to the project (of the project's domain)", required=True),
    "email": P.string("email ID of the user to be added to the project (project.invite.required)"),
    "projectroleid": P.uuid("ID of the project role restricting what the user may call in the project"),
    "roletype": P.string("the user's role in the project: Admin or Regular (default)"),
})
def add_user_to_project(ctx, p):
    """Makes one user (not its whole account) a member of the project: only that user acts in it,
    with its own role and project role (project admins and admins); with ``project.invite.required``
    invites the user (by mail with ``email``) instead."""
    project = find_project(ctx.session, ctx.caller, p["projectid"], admin=True)
    if project.state != "Active":
        raise invalid(ctx, "projectid", f"Can't add user to the specified project id in state={project.state} as it "
                                        f"isn't currently active")
    from .project_roles import project_role_of

    project_role = project_role_of(ctx, project, p["projectroleid"], "projectroleid") if "projectroleid" in p else None
    user = _project_user(ctx, project, username=p["username"])
    if _membership(ctx.session, project, user.account) is not None:
        raise invalid(ctx, "username", f"User belongs to account {user.account.name} which is already part of the "
                                       f"project")
    if _user_membership(ctx.session, project, user) is not None:
        raise invalid(ctx, "username", f"user {user.username} is already a member of project {project.name}")
    role = choice(ctx, "roletype", p.get("roletype") or ProjectMemberRole.REGULAR, ProjectMemberRole.ALL)
    if ctx.cloud.config.get(ctx.session, "project.invite.required"):
        email = _email(ctx, p) if (p.get("email") or "").strip() else None
        return _invite(ctx, project, user.account, email, role, project_role, user=user)
    return ctx.start_job("project.add_member", {
        "project": project.uuid, "user": user.uuid, "role": role,
        "project_role": project_role.uuid if project_role else None}, instance=project, instance_type="Project")


@api_command("deleteUserFromProject", response="success", is_async=True, roles=ALL_ROLES, since="4.15.0", params={
    "projectid": P.uuid("ID of the project to remove the user from", required=True),
    "userid": P.uuid("Id of the user to be removed from the project", required=True),
})
def delete_user_from_project(ctx, p):
    """Removes a user member (and its pending invitations) from a project; the last Admin cannot be removed."""
    project = find_project(ctx.session, ctx.caller, p["projectid"], admin=True)
    user = _project_user(ctx, project, user_uuid=p["userid"])
    member = _user_membership(ctx.session, project, user)
    if member is None:
        raise invalid(ctx, "userid", f"User {user.username} is not assigned to the project {project.name}")
    if member.role == ProjectMemberRole.ADMIN and len(_admins(ctx.session, project)) == 1:
        raise InvalidParameterError(f"user {user.username} is the only admin of project {project.name}: make another "
                                    f"member its owner first")
    return ctx.start_job("project.remove_user", {"project": project.uuid, "user": user.uuid},
                         instance=project, instance_type="Project")


@job_handler("project.remove_user")
def remove_user_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        user = session.scalar(select(User).where(User.uuid == ctx.params["user"]))
        member = _user_membership(session, project, user)
        if member is not None:
            if member.role == ProjectMemberRole.ADMIN and len(_admins(session, project)) == 1:
                raise InvalidParameterError(f"user {user.username} is the only admin of project {project.name}")
            set_role(session, member, ProjectMemberRole.REGULAR)  # gives its account's project count back
            session.delete(member)
        session.execute(delete(ProjectInvitation).where(ProjectInvitation.project_id == project.id,
                                                        ProjectInvitation.user_id == user.id))
        record(session, "PROJECT.USER.REMOVE", f"Removed user {user.username} from project {project.name}",
               caller=ctx.caller, account_id=project.project_account_id, domain_id=project.domain_id,
               resource=project, plugins=ctx.cloud.plugins)
    return SUCCESS


@api_command("listProjectAccounts", response="projectaccount", is_list=True, list_params=False, roles=ALL_ROLES,
             since="3.0.0", response_fields=PROJECT_ACCOUNT_FIELDS, params={
                 "projectid": P.uuid("the ID of the project", required=True),
                 "account": P.string("list only this member (and the members that are users of it)"),
                 "userid": P.uuid("list only this user member"),
                 "role": P.string("list only members of this role: Admin or Regular"),
                 **PAGING_PARAMS,
             })
def list_project_accounts(ctx, p):
    """Lists a project's members (for its members and admins)."""
    project = find_project(ctx.session, ctx.caller, p["projectid"])
    query = select(ProjectAccount).join(Account, Account.id == ProjectAccount.account_id).where(
        ProjectAccount.project_id == project.id)
    if "account" in p:
        query = query.where(Account.name == p["account"])
    if "userid" in p:
        query = query.where(ProjectAccount.user_id == _project_user(ctx, project, user_uuid=p["userid"]).id)
    if "role" in p:
        query = query.where(ProjectAccount.role == choice(ctx, "role", p["role"], (ProjectMemberRole.ADMIN,
                                                                                     ProjectMemberRole.REGULAR)))
    total, members = ctx.page(query, order_by=ProjectAccount.id)
    return total, [project_account_view(ctx.session, project, member) for member in members]


# -- invitations (project.invite.required) ---------------------------------------------------


def expire_invitations(ctx) -> None:
    """Mark the pending invitations older than ``project.invite.timeout`` seconds Expired (what
    CloudStack's periodic clean-up does; here whenever invitations are read or answered)."""
    # capped: a value stored before the key had its maximum must not overflow the date arithmetic
    timeout = min(ctx.cloud.config.get(ctx.session, "project.invite.timeout"), INVITE_TIMEOUT_MAX)
    cutoff = utcnow() - dt.timedelta(seconds=timeout)
    ctx.session.execute(update(ProjectInvitation).where(
        ProjectInvitation.state == InvitationState.PENDING, ProjectInvitation.created < cutoff)
        .values(state=InvitationState.EXPIRED))


def _invite(ctx, project: Project, account: Account | None, email: str | None, role: str,
            project_role: ProjectRole | None, user: User | None = None):
    """An invitation for ``account`` (accepted by that account), for ``user`` (accepted by that
    user) or for ``email`` (accepted with the token mailed there; with ``user`` that user joins);
    one pending invitation per account (user, address) and project."""
    expire_invitations(ctx)
    if account is not None and ctx.session.scalar(select(ProjectInvitation.id).where(
            ProjectInvitation.project_id == project.id, ProjectInvitation.account_id == account.id,
            ProjectInvitation.user_id.is_(None), ProjectInvitation.state == InvitationState.PENDING)):
        raise invalid(ctx, "account", f"There is already a pending invitation for account {account.name} to the "
                                      f"project {project.name}")
    if user is not None and email is None and ctx.session.scalar(select(ProjectInvitation.id).where(
            ProjectInvitation.project_id == project.id, ProjectInvitation.user_id == user.id,
            ProjectInvitation.state == InvitationState.PENDING)):
        raise invalid(ctx, "username", f"There is already a pending invitation for user {user.username} to the "
                                       f"project {project.name}")
    if email is not None:
        _check_mail_settings(ctx)
        if ctx.session.scalar(select(ProjectInvitation.id).where(
                ProjectInvitation.project_id == project.id, ProjectInvitation.email == email,
                ProjectInvitation.state == InvitationState.PENDING)):
            raise invalid(ctx, "email", f"There is already a pending invitation for email {email} to the project "
                                        f"{project.name}")
    by_mail = email is not None
    invitation = ProjectInvitation(
        project_id=project.id, account_id=None if by_mail else account.id, email=email,
        user_id=user.id if user else None,
        token="".join(secrets.choice(string.digits + string.ascii_uppercase) for _ in range(10)) if by_mail else None,
        role=role, project_role_id=project_role.id if project_role else None)
    ctx.session.add(invitation)
    ctx.session.flush()
    invitee = email if by_mail else f"user {user.username}" if user else account.name
    ctx.event("PROJECT.USER.ADD" if user else "PROJECT.ACCOUNT.ADD", f"Invited {invitee} to project {project.name}",
              invitation, account_id=project.project_account_id, domain_id=project.domain_id)
    return ctx.start_job("project.invite", {"invitation": invitation.uuid}, instance=project, instance_type="Project")


def _email(ctx, p) -> str:
    email = (p.get("email") or "").strip()
    if not _EMAIL.fullmatch(email):
        raise invalid(ctx, "email", f"{p.get('email')!r} is not an email address (name@domain)")
    return email


def _check_mail_settings(ctx) -> None:
    """431 unless an email invitation can be sent: CloudStack would write it and drop the mail
    silently, leaving an invitation nobody can accept."""
    for name, what in (("project.smtp.host", "the SMTP server to send them through"),
                       ("project.email.sender", "the From address of their mails")):
        if not (ctx.cloud.config.get(ctx.session, name) or "").strip():
            raise invalid(ctx, "email", f"email invitations cannot be sent: set {name} ({what}) with "
                                        f"updateConfiguration first")


@job_handler("project.invite")
def invite_job(ctx):
    """The async half of an invitation: an email invitation's token is mailed, after the command's
    transaction committed it. When the mail fails the invitation stays (Pending, unusable) and the
    job fails saying how to send it again; nothing is rolled back."""
    from core.mail import SmtpServer

    with ctx.transaction() as session:
        invitation = session.scalar(select(ProjectInvitation).where(ProjectInvitation.uuid == ctx.params["invitation"]))
        if invitation is None or not invitation.email or invitation.state != InvitationState.PENDING:
            return SUCCESS  # an account's invitation, or one deleted (deleteProjectInvitation) meanwhile
        project, to, token = invitation.project, invitation.email, invitation.token
        server = SmtpServer.from_settings(ctx.cloud.config, session, "project.smtp")
        sender = (ctx.cloud.config.get(session, "project.email.sender") or "").strip()
    try:
        server.send(sender, to, f"You are invited to join the CloudStack project {project.name}",
                    f"You have been invited to join the CloudStack project {project.name} (id={project.uuid}).\n"
                    f"Please use token [{token}] to complete registration:\n\n"
                    f"  updateProjectInvitation projectid={project.uuid} token={token} accept=true\n")
    except (OSError, smtplib.SMTPException) as exc:
        message = (f"The invitation {ctx.params['invitation']} to project {project.name} for {to} is kept, but its "
                   f"mail could not be sent through {server.describe()} ({type(exc).__name__}: {exc}). Fix the "
                   f"project.smtp.* settings, then delete the invitation (deleteProjectInvitation) and add the "
                   f"email again to send a new one.")
        log.warning("%s", message)
        raise ResourceUnavailableError(message) from None
    log.info("invitation %s to project %s mailed to %s through %s", ctx.params["invitation"], project.uuid, to,
             server.describe())
    return SUCCESS


@api_command("listProjectInvitations", response="projectinvitation", is_list=True, roles=ALL_ROLES,
             since="3.0.0", response_fields=PROJECT_INVITATION_FIELDS, params={
                 "projectid": P.uuid("list by project id (its admins: every invitation of the project)"),
                 "activeonly": P.boolean("if true, list only active invitations - having Pending state and ones "
                                         "that are not timed out yet"),
                 "state": P.string("list invitations by state: Pending, Completed, Declined or Expired"),
                 "id": P.uuid("list invitations by id"),
             })
def list_project_invitations(ctx, p):
    """Lists the invitations to the caller's account; with ``projectid``, a project's (for its
    admins); with ``listall``, admins' also those of the projects they manage."""
    expire_invitations(ctx)
    caller = ctx.caller
    query = select(ProjectInvitation).join(Project, Project.id == ProjectInvitation.project_id).where(
        Project.removed.is_(None))
    if "projectid" in p:
        project = find_project(ctx.session, caller, p["projectid"], admin=True)
        query = query.where(ProjectInvitation.project_id == project.id)
    elif p.get("listall") and caller.is_root_admin:
        pass
    elif p.get("listall") and caller.is_domain_admin:
        query = query.where(Project.domain_id.in_(domain_ids_under(ctx.session, caller.domain_path)))
    else:  # its account's, and its own user's (not those of the account's other users)
        query = query.where(ProjectInvitation.account_id == caller.account_id, or_(
            ProjectInvitation.user_id.is_(None), ProjectInvitation.user_id == caller.user_id))
    if "id" in p:
        query = query.where(ProjectInvitation.uuid == p["id"])
    if "state" in p:
        query = query.where(ProjectInvitation.state == choice(ctx, "state", p["state"], InvitationState.ALL))
    if p.get("activeonly"):
        query = query.where(ProjectInvitation.state == InvitationState.PENDING)
    total, rows = ctx.page(query, order_by=ProjectInvitation.id)
    return total, [project_invitation_view(invitation) for invitation in rows]


@api_command("updateProjectInvitation", response="success", is_async=True, roles=ALL_ROLES, since="3.0.0", params={
    "projectid": P.uuid("ID of the project to join", required=True),
    "account": P.string("account that is joining the project (default: the caller's)"),
    "userid": P.uuid("the user whose invitation is answered (default: the caller)"),
    "token": P.string("the token of an invitation sent by email"),
    "accept": P.boolean("if true, accept the invitation, decline if false. True by default"),
})
def update_project_invitation(ctx, p):
    """Accepts or declines an invitation to a project: the account's own, a user's (``userid``), or
    one sent by email (``token``); accepting makes the account (the user) a member with the
    invitation's role."""
    expire_invitations(ctx)
    caller = ctx.caller
    project = ctx.session.scalar(select(Project).where(Project.uuid == p["projectid"], Project.removed.is_(None)))
    if project is None:
        raise invalid(ctx, "projectid", f"Unable to find the project id={p['projectid']}")
    if p.get("account") and "userid" in p:
        raise InvalidParameterError("account and userid cannot be given together")
    user = None
    if "userid" in p:  # that user's invitation: the user itself, or an admin reaching its account
        user = _project_user(ctx, project, user_uuid=p["userid"])
        if user.id != caller.user_id and not (
                (caller.is_root_admin or caller.is_domain_admin)
                and can_reach(ctx.session, caller, user.account_id, user.account.domain_id)):
            raise PermissionDenied(f"User {caller.username} may not answer invitations of user {user.username}")
        account = user.account
    elif p.get("account"):
        if not (caller.is_root_admin or caller.is_domain_admin) and not (
                p["account"].strip() == caller.account_name and project.domain_id == caller.domain_id):
            raise PermissionDenied(f"Account {caller.account_name} may only answer its own invitations")
        account = _member_account(ctx, project, p["account"], None)
        if account.id != caller.account_id and not can_reach(ctx.session, caller, account.id, account.domain_id):
            raise PermissionDenied(f"Account {caller.account_name} may not answer invitations of {account.name}")
    else:
        account = ctx.session.get(Account, caller.account_id)
    query = select(ProjectInvitation).where(ProjectInvitation.project_id == project.id)
    if p.get("token"):
        query = query.where(ProjectInvitation.token == p["token"].strip())
    elif user is not None:
        query = query.where(ProjectInvitation.user_id == user.id)
    elif p.get("account"):
        query = query.where(ProjectInvitation.account_id == account.id, ProjectInvitation.user_id.is_(None))
    else:  # the caller's account's, or its own user's
        query = query.where(ProjectInvitation.account_id == account.id, or_(
            ProjectInvitation.user_id.is_(None), ProjectInvitation.user_id == caller.user_id))
    invitations = ctx.session.scalars(query.order_by(ProjectInvitation.id.desc())).all()
    accept = p.get("accept", True)
    invitation = next((i for i in invitations if i.state == InvitationState.PENDING), None)
    if invitation is None:
        if accept and any(i.state == InvitationState.EXPIRED for i in invitations):
            raise InvalidParameterError(f"Invitation is expired for account id={account.name} to the project "
                                        f"id={project.uuid}")
        raise InvalidParameterError(f"Unable to find invitation for account name={account.name} to the project "
                                    f"id={project.uuid}")
    return ctx.start_job("project.invitation.update", {
        "invitation": invitation.uuid, "account": account.uuid, "accept": accept},
        instance=project, instance_type="Project")


@job_handler("project.invitation.update")
def invitation_update_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        invitation = session.scalar(select(ProjectInvitation).where(ProjectInvitation.uuid == ctx.params["invitation"]))
        if invitation is None or invitation.state != InvitationState.PENDING:
            raise InvalidParameterError("The invitation was answered, expired or deleted meanwhile")
        project, account = invitation.project, session.scalar(select(Account).where(
            Account.uuid == ctx.params["account"]))
        accept = ctx.params["accept"]
        invitation.state = InvitationState.COMPLETED if accept else InvitationState.DECLINED
        user = session.get(User, invitation.user_id) if invitation.user_id else None
        if accept and user is not None:  # a user's invitation (by token too, as CloudStack): that user joins
            add_member(session, project, user.account, invitation.role, invitation.project_role_id, user=user)
        elif accept:
            add_member(session, project, account, invitation.role, invitation.project_role_id)
        record(session, "PROJECT.INVITATION.UPDATE",
               f"Account {account.name} {'accepted' if accept else 'declined'} the invitation to project "
               f"{project.name}", caller=ctx.caller, account_id=project.project_account_id,
               domain_id=project.domain_id, resource=invitation, plugins=ctx.cloud.plugins)
    return SUCCESS


@api_command("deleteProjectInvitation", response="success", is_async=True, roles=ALL_ROLES, since="3.0.0",
             params={"id": P.uuid("id of the invitation", required=True)})
def delete_project_invitation(ctx, p):
    """Deletes an invitation (the project's admins and admins above it)."""
    invitation = ctx.session.scalar(select(ProjectInvitation).where(ProjectInvitation.uuid == p["id"]))
    if invitation is None:
        raise invalid(ctx, "id", f"Unable to find project invitation by id {p['id']}")
    project = find_project(ctx.session, ctx.caller, invitation.project.uuid, admin=True, param="id")
    ctx.event("PROJECT.INVITATION.REMOVE", f"Deleted an invitation to project {project.name}", invitation,
              account_id=project.project_account_id, domain_id=project.domain_id)
    ctx.session.delete(invitation)
    return ctx.start_job("project.invite", {"invitation": p["id"]}, instance=project, instance_type="Project")

"""Projects: createProject, listProjects, updateProject, deleteProject, addAccountToProject,
listProjectAccounts, deleteAccountFromProject.

A project owns its resources through its own account (type 5, ``Project.project_account``):
``projectid`` on a create command makes the project that account's owner, and on a list
command lists the project's resources (``core.access``). Members are accounts, Admin or
Regular; members use the project's resources, admins also change the project and its
membership. Domain admins above the project's domain and root admins may do both.
Accounts join without an invitation (``projectinviterequired`` is false).
"""

from __future__ import annotations

from sqlalchemy import or_, select

from api.views.identity import PROJECT_ACCOUNT_FIELDS, PROJECT_FIELDS, project_account_view, project_view
from core import roles
from core.access import domain_ids_under, find_project
from core.commands import ALL_ROLES, SUCCESS, P, api_command
from core.errors import InvalidParameterError, PermissionDenied, ResourceInUseError
from core.jobs import job_handler
from core.model import (
    Account,
    AccountType,
    Domain,
    Project,
    ProjectAccount,
    ProjectRole,
    Template,
    VirtualMachine,
    Volume,
    new_uuid,
)
from core.orchestration import identity, limits

from .accounts import check_domain
from .zones import choice, invalid


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
    account = Account(name=f"PrjAcct-{name}-{project_uuid[:8]}", account_type=AccountType.PROJECT,
                      domain_id=domain.id, role_id=roles.default_role(ctx.session, "User").id)
    ctx.session.add(account)
    ctx.session.flush()
    limits.ensure_rows(ctx.session, account_id=account.id)
    project = Project(uuid=project_uuid, name=name, display_text=p.get("displaytext") or name, domain_id=domain.id,
                      project_account_id=account.id, state="Disabled")
    ctx.session.add(project)
    ctx.session.flush()
    ctx.session.add(ProjectAccount(project_id=project.id, account_id=owner.id, role=ProjectRole.ADMIN))
    ctx.event("PROJECT.CREATE", f"Created project {name}", project, account_id=owner.id, domain_id=domain.id)
    return ctx.start_job("project.activate", {"project": project.uuid}, instance=project, instance_type="Project")


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
    member_of = select(ProjectAccount.project_id).where(ProjectAccount.account_id == caller.account_id)
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
                 "account": P.string("the account to make the project's owner (an Admin member)"),
                 "swapowner": P.boolean("with account: the other admins become Regular members (default true)"),
             })
def update_project(ctx, p):
    """Renames a project, changes its display text or its owner (project admins and admins)."""
    project = find_project(ctx.session, ctx.caller, p["id"], admin=True, param="id")
    if "name" in p and p["name"].strip() != project.name and ctx.session.scalar(select(Project.id).where(
            Project.name == p["name"].strip(), Project.domain_id == project.domain_id, Project.removed.is_(None))):
        raise invalid(ctx, "name", f"A project named {p['name']} already exists in the domain")
    owner = _member_account(ctx, project, p["account"], None) if "account" in p else None
    return ctx.start_job("project.update", {
        "project": project.uuid, "name": (p.get("name") or "").strip() or None, "displaytext": p.get("displaytext"),
        "owner": owner.uuid if owner else None, "swapowner": p.get("swapowner", True)},
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
        if ctx.params["owner"]:
            owner = session.scalar(select(Account).where(Account.uuid == ctx.params["owner"]))
            if ctx.params["swapowner"]:
                for member in session.scalars(select(ProjectAccount).where(
                        ProjectAccount.project_id == project.id, ProjectAccount.role == ProjectRole.ADMIN,
                        ProjectAccount.account_id != owner.id)):
                    member.role = ProjectRole.REGULAR
            member = session.scalar(select(ProjectAccount).where(ProjectAccount.project_id == project.id,
                                                                 ProjectAccount.account_id == owner.id))
            if member is None:
                session.add(ProjectAccount(project_id=project.id, account_id=owner.id, role=ProjectRole.ADMIN))
            else:
                member.role = ProjectRole.ADMIN
        session.flush()
        record(session, "PROJECT.UPDATE", f"Updated project {project.name}", caller=ctx.caller,
               account_id=project.project_account_id, domain_id=project.domain_id, resource=project,
               plugins=ctx.cloud.plugins)
        return _render(session, project.uuid)


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
    "account": P.string("the name of the account to add (of the project's domain)", required=True),
    "roletype": P.string("the account's role in the project: Admin or Regular (default)"),
})
def add_account_to_project(ctx, p):
    """Makes an account of the project's domain a member of the project (project admins and admins)."""
    project = find_project(ctx.session, ctx.caller, p["projectid"], admin=True)
    account = _member_account(ctx, project, p["account"], None)
    role = choice(ctx, "roletype", p.get("roletype") or ProjectRole.REGULAR, (ProjectRole.ADMIN, ProjectRole.REGULAR))
    if ctx.session.scalar(select(ProjectAccount.id).where(ProjectAccount.project_id == project.id,
                                                          ProjectAccount.account_id == account.id)):
        raise invalid(ctx, "account", f"account {account.name} is already a member of project {project.name}")
    return ctx.start_job("project.add_account", {"project": project.uuid, "account": account.uuid, "role": role},
                         instance=project, instance_type="Project")


@job_handler("project.add_account")
def add_account_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        account = session.scalar(select(Account).where(Account.uuid == ctx.params["account"]))
        if session.scalar(select(ProjectAccount.id).where(ProjectAccount.project_id == project.id,
                                                          ProjectAccount.account_id == account.id)) is None:
            session.add(ProjectAccount(project_id=project.id, account_id=account.id, role=ctx.params["role"]))
        record(session, "PROJECT.ACCOUNT.ADD", f"Added account {account.name} to project {project.name}",
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
    if member.role == ProjectRole.ADMIN and len(_admins(ctx.session, project)) == 1:
        raise InvalidParameterError(f"account {account.name} is the only admin of project {project.name}: make "
                                    f"another account its owner first")
    return ctx.start_job("project.remove_account", {"project": project.uuid, "account": account.uuid},
                         instance=project, instance_type="Project")


def _admins(session, project: Project) -> list[int]:
    return list(session.scalars(select(ProjectAccount.account_id).where(ProjectAccount.project_id == project.id,
                                                                        ProjectAccount.role == ProjectRole.ADMIN)))


@job_handler("project.remove_account")
def remove_account_job(ctx):
    from core.events import record

    with ctx.transaction() as session:
        project = session.scalar(select(Project).where(Project.uuid == ctx.params["project"]))
        account = session.scalar(select(Account).where(Account.uuid == ctx.params["account"]))
        member = session.scalar(select(ProjectAccount).where(ProjectAccount.project_id == project.id,
                                                             ProjectAccount.account_id == account.id))
        if member is not None:
            if member.role == ProjectRole.ADMIN and _admins(session, project) == [account.id]:
                raise InvalidParameterError(f"account {account.name} is the only admin of project {project.name}")
            session.delete(member)
        record(session, "PROJECT.ACCOUNT.REMOVE", f"Removed account {account.name} from project {project.name}",
               caller=ctx.caller, account_id=project.project_account_id, domain_id=project.domain_id,
               resource=project, plugins=ctx.cloud.plugins)
    return SUCCESS


@api_command("listProjectAccounts", response="projectaccount", is_list=True, list_params=False, roles=ALL_ROLES,
             since="3.0.0", response_fields=PROJECT_ACCOUNT_FIELDS, params={
                 "projectid": P.uuid("the ID of the project", required=True),
                 "account": P.string("list only this member"),
                 "role": P.string("list only members of this role: Admin or Regular"),
                 "page": P.integer("the page to return, from 1", minimum=1),
                 "pagesize": P.integer("the number of items per page", minimum=1),
             })
def list_project_accounts(ctx, p):
    """Lists a project's members (for its members and admins)."""
    project = find_project(ctx.session, ctx.caller, p["projectid"])
    query = select(ProjectAccount).join(Account, Account.id == ProjectAccount.account_id).where(
        ProjectAccount.project_id == project.id)
    if "account" in p:
        query = query.where(Account.name == p["account"])
    if "role" in p:
        query = query.where(ProjectAccount.role == choice(ctx, "role", p["role"], (ProjectRole.ADMIN,
                                                                                     ProjectRole.REGULAR)))
    total, members = ctx.page(query, order_by=ProjectAccount.id)
    return total, [project_account_view(ctx.session, project, member) for member in members]

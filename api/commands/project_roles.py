"""Project roles (CloudStack 4.15+): createProjectRole, listProjectRoles, updateProjectRole,
deleteProjectRole, createProjectRolePermission, listProjectRolePermissions,
updateProjectRolePermission, deleteProjectRolePermission.

A project role belongs to one project: ordered allow/deny rules on API names with ``*``
wildcards. Given to a Regular member (``addAccountToProject projectroleid=``), it restricts
what that member may call in the project, on top of its account's role; it never grants
(``core.roles.check_project_role``). Project admins, domain admins above the project and root
admins manage a project's roles; its members list them.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.identity import (
    PROJECT_ROLE_FIELDS,
    PROJECT_ROLE_PERMISSION_FIELDS,
    project_role_permission_view,
    project_role_view,
)
from core import roles
from core.access import find_project
from core.commands import ALL_ROLES, PAGING_PARAMS, SUCCESS, P, api_command
from core.errors import InvalidParameterError, PermissionDenied
from core.model import Project, ProjectAccount, ProjectRole, ProjectRolePermission

from .zones import choice, invalid


def _project(ctx, p: dict, *, admin: bool = True) -> Project:
    return find_project(ctx.session, ctx.caller, p["projectid"], admin=admin)


def project_role_of(ctx, project: Project, uuid: str, param: str) -> ProjectRole:
    """The project role ``uuid`` of ``project``; 431 naming ``param`` when the project has none such."""
    role = ctx.session.scalar(select(ProjectRole).where(ProjectRole.uuid == uuid, ProjectRole.project_id == project.id))
    if role is None:
        raise invalid(ctx, param, f"project {project.name} has no project role {uuid}")
    return role


def _name_free(ctx, project: Project, name: str, role: ProjectRole | None = None) -> str:
    name = name.strip()
    if not name:
        raise invalid(ctx, "name", "must not be empty")
    taken = ctx.session.scalar(select(ProjectRole.id).where(ProjectRole.project_id == project.id,
                                                            func.lower(ProjectRole.name) == name.lower()))
    if taken is not None and (role is None or taken != role.id):
        raise invalid(ctx, "name", f"project {project.name} already has a role named {name}")
    return name


def _event(ctx, event_type: str, text: str, project: Project, resource) -> None:
    ctx.event(event_type, text, resource, account_id=project.project_account_id, domain_id=project.domain_id)


@api_command("createProjectRole", response="projectrole", roles=ALL_ROLES, response_fields=PROJECT_ROLE_FIELDS,
             since="4.15.0", params={
                 "projectid": P.uuid("ID of project where role is being created", required=True),
                 "name": P.string("creates a project role with this unique name", required=True),
                 "description": P.string("the description of the project role", max_length=4096),
             })
def create_project_role(ctx, p):
    """Creates a project role (without rules: it restricts nothing until rules are added)."""
    project = _project(ctx, p)
    role = ProjectRole(project_id=project.id, name=_name_free(ctx, project, p["name"]), description=p.get("description"))
    ctx.session.add(role)
    ctx.session.flush()
    _event(ctx, "PROJECT.ROLE.CREATE", f"Created project role {role.name} in project {project.name}", project, role)
    return project_role_view(role, project)


@api_command("listProjectRoles", response="projectrole", is_list=True, list_params=False, roles=ALL_ROLES,
             response_fields=PROJECT_ROLE_FIELDS, since="4.15.0", params={
                 "projectid": P.uuid("list project roles of this project", required=True),
                 "projectroleid": P.uuid("list the project role with this ID"),
                 "name": P.string("list project roles by name"),
                 "keyword": P.string("list by keyword (matches the name)"),
                 **PAGING_PARAMS,
             })
def list_project_roles(ctx, p):
    """Lists a project's roles (for its members and admins)."""
    project = _project(ctx, p, admin=False)
    query = select(ProjectRole).where(ProjectRole.project_id == project.id)
    if "projectroleid" in p:
        query = query.where(ProjectRole.uuid == p["projectroleid"])
    if "name" in p:
        query = query.where(ProjectRole.name == p["name"])
    total, rows = ctx.page(query, name_column=ProjectRole.name, order_by=ProjectRole.id)
    return total, [project_role_view(role, project) for role in rows]


@api_command("updateProjectRole", response="projectrole", roles=ALL_ROLES, response_fields=PROJECT_ROLE_FIELDS,
             since="4.15.0", params={
                 "id": P.uuid("ID of the project role", required=True),
                 "projectid": P.uuid("ID of the project the role belongs to", required=True),
                 "name": P.string("the new name of the project role"),
                 "description": P.string("the new description of the project role", max_length=4096),
             })
def update_project_role(ctx, p):
    """Renames a project role or changes its description."""
    project = _project(ctx, p)
    role = project_role_of(ctx, project, p["id"], "id")
    if "name" in p:
        role.name = _name_free(ctx, project, p["name"], role)
    if p.get("description"):
        role.description = p["description"]
    _event(ctx, "PROJECT.ROLE.UPDATE", f"Updated project role {role.name} in project {project.name}", project, role)
    return project_role_view(role, project)


@api_command("deleteProjectRole", response="success", roles=ALL_ROLES, since="4.15.0", params={
    "id": P.uuid("ID of the project role to be deleted", required=True),
    "projectid": P.uuid("ID of the project from where the role is to be deleted", required=True),
})
def delete_project_role(ctx, p):
    """Deletes a project role no member has, with its rules."""
    project = _project(ctx, p)
    role = project_role_of(ctx, project, p["id"], "id")
    if ctx.session.scalar(select(ProjectAccount.id).where(ProjectAccount.project_role_id == role.id).limit(1)):
        raise PermissionDenied("Found users that have the project role in use, cannot delete the Project Role")
    for rule in _rules(ctx, role):
        ctx.session.delete(rule)
    _event(ctx, "PROJECT.ROLE.DELETE", f"Deleted project role {role.name} in project {project.name}", project, role)
    ctx.session.delete(role)
    return SUCCESS


# -- permissions ---------------------------------------------------------------------------


def _rules(ctx, role: ProjectRole) -> list[ProjectRolePermission]:
    return list(ctx.session.scalars(select(ProjectRolePermission).where(
        ProjectRolePermission.project_role_id == role.id).order_by(ProjectRolePermission.sort_order,
                                                                    ProjectRolePermission.id)))


def _permission(ctx, value: str) -> str:
    return choice(ctx, "permission", value, (roles.ALLOW, roles.DENY))


@api_command("createProjectRolePermission", response="projectrolepermission", roles=ALL_ROLES, since="4.15.0",
             response_fields=PROJECT_ROLE_PERMISSION_FIELDS, params={
                 "projectid": P.uuid("ID of project where project role permission is to be created", required=True),
                 "projectroleid": P.uuid("ID of the project role", required=True),
                 "rule": P.string("the API name or wildcard rule such as list*", required=True),
                 "permission": P.string("the rule permission, allow or deny", required=True),
                 "description": P.string("the description of the role permission", max_length=4096),
             })
def create_project_role_permission(ctx, p):
    """Adds a rule at the end of a project role's rules."""
    project = _project(ctx, p)
    role = project_role_of(ctx, project, p["projectroleid"], "projectroleid")
    try:
        rule = roles.validate_rule(p["rule"])
    except InvalidParameterError as exc:
        raise invalid(ctx, "rule", exc.message) from None
    existing = _rules(ctx, role)
    if any(r.rule.lower() == rule.lower() for r in existing):
        raise invalid(ctx, "rule", f"Project role permission for {rule} seems to already exist.")
    row = ProjectRolePermission(project_id=project.id, project_role_id=role.id, rule=rule,
                                permission=_permission(ctx, p["permission"]), description=p.get("description"),
                                sort_order=max((r.sort_order for r in existing), default=-1) + 1)
    ctx.session.add(row)
    ctx.session.flush()
    _event(ctx, "PROJECT.ROLE.PERMISSION.CREATE", f"Added rule {rule} ({row.permission}) to project role "
           f"{role.name}", project, role)
    return project_role_permission_view(row, role, project)


@api_command("listProjectRolePermissions", response="projectrolepermission", is_list=True, list_params=False,
             roles=ALL_ROLES, since="4.15.0", response_fields=PROJECT_ROLE_PERMISSION_FIELDS, params={
                 "projectid": P.uuid("ID of the project", required=True),
                 "projectroleid": P.uuid("ID of the project role"),
             })
def list_project_role_permissions(ctx, p):
    """Lists the rules of a project's roles (of one with ``projectroleid``) in evaluation order."""
    project = _project(ctx, p, admin=False)
    if "projectroleid" in p:
        chosen = [project_role_of(ctx, project, p["projectroleid"], "projectroleid")]
    else:
        chosen = list(ctx.session.scalars(select(ProjectRole).where(ProjectRole.project_id == project.id)
                                          .order_by(ProjectRole.id)))
    views = [project_role_permission_view(rule, role, project) for role in chosen for rule in _rules(ctx, role)]
    return len(views), views


@api_command("updateProjectRolePermission", response="success", roles=ALL_ROLES, since="4.15.0", params={
    "projectid": P.uuid("ID of project where project role permission is to be updated", required=True),
    "projectroleid": P.uuid("ID of the project role", required=True),
    "ruleorder": P.list("the IDs of all the role's permissions, in their new order", item=P.uuid()),
    "projectrolepermissionid": P.uuid("the ID of the rule whose permission changes (with permission)"),
    "permission": P.string("the new permission of the rule: allow or deny"),
})
def update_project_role_permission(ctx, p):
    """Reorders a project role's rules (``ruleorder``), or changes one rule's permission."""
    project = _project(ctx, p)
    role = project_role_of(ctx, project, p["projectroleid"], "projectroleid")
    if "ruleorder" in p:
        if "projectrolepermissionid" in p or "permission" in p:
            raise invalid(ctx, "ruleorder", "Parameters permission and ruleid must be mutually exclusive with "
                                            "ruleorder")
        existing = {rule.uuid: rule for rule in _rules(ctx, role)}
        if sorted(p["ruleorder"]) != sorted(existing):
            raise invalid(ctx, "ruleorder", "give every permission of the project role, each once")
        for position, uuid in enumerate(p["ruleorder"]):
            existing[uuid].sort_order = position
        text = f"Reordered the rules of project role {role.name}"
    elif "projectrolepermissionid" in p and "permission" in p:
        rule = ctx.session.scalar(select(ProjectRolePermission).where(
            ProjectRolePermission.uuid == p["projectrolepermissionid"],
            ProjectRolePermission.project_role_id == role.id))
        if rule is None:
            raise invalid(ctx, "projectrolepermissionid", "Role permission doesn't exist in the project, probably "
                                                          "because of invalid rule id")
        rule.permission = _permission(ctx, p["permission"])
        text = f"Set rule {rule.rule} of project role {role.name} to {rule.permission}"
    else:
        raise InvalidParameterError("give ruleorder, or projectrolepermissionid with permission")
    _event(ctx, "PROJECT.ROLE.PERMISSION.UPDATE", text, project, role)
    return SUCCESS


@api_command("deleteProjectRolePermission", response="success", roles=ALL_ROLES, since="4.15.0", params={
    "projectid": P.uuid("ID of the project where the project role permission is to be deleted", required=True),
    "id": P.uuid("ID of the project role permission to be deleted", required=True),
})
def delete_project_role_permission(ctx, p):
    """Deletes one rule of a project role."""
    project = _project(ctx, p)
    rule = ctx.session.scalar(select(ProjectRolePermission).where(ProjectRolePermission.uuid == p["id"],
                                                                  ProjectRolePermission.project_id == project.id))
    if rule is None:
        raise invalid(ctx, "id", "Invalid role permission id provided for the project")
    role = ctx.session.get(ProjectRole, rule.project_role_id)
    _event(ctx, "PROJECT.ROLE.PERMISSION.DELETE", f"Deleted rule {rule.rule} of project role {role.name}",
           project, role)
    ctx.session.delete(rule)
    return SUCCESS

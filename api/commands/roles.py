"""Dynamic roles: createRole, listRoles, updateRole, deleteRole, createRolePermission,
listRolePermissions, updateRolePermission, deleteRolePermission.

A role is a type (Admin, ResourceAdmin, DomainAdmin, User) and ordered allow/deny rules
on API names with ``*`` wildcards; ``core.roles`` evaluates them on every request. The
four default roles cannot be renamed or deleted; the Root Admin role may call everything
and takes no rules. Only root admins change roles; domain admins list the roles below Admin.
"""

from __future__ import annotations

from sqlalchemy import func, select

from api.views.identity import ROLE_FIELDS, ROLE_PERMISSION_FIELDS, role_permission_view, role_view
from core import roles
from core.commands import ADMINS, ROOT_ONLY, SUCCESS, P, api_command
from core.errors import InvalidParameterError, PermissionDenied, ResourceInUseError
from core.model import Account, Role, RolePermission, RoleType

from .zones import choice, invalid


def _role(ctx, p: dict, param: str = "id") -> Role:
    role = ctx.get(Role, p[param], param, check_owner=False)
    if not ctx.caller.is_root_admin and role.role_type == RoleType.ADMIN:
        raise PermissionDenied(f"Account {ctx.caller.account_name} may not see role {role.name}")
    return role


def _name_free(ctx, name: str, role: Role | None = None) -> str:
    name = name.strip()
    if not name:
        raise invalid(ctx, "name", "must not be empty")
    taken = ctx.session.scalar(select(Role.id).where(func.lower(Role.name) == name.lower(), Role.removed.is_(None)))
    if taken is not None and (role is None or taken != role.id):
        raise invalid(ctx, "name", f"A role named {name} already exists")
    return name


@api_command("createRole", response="role", roles=ROOT_ONLY, response_fields=ROLE_FIELDS, since="4.9.0", params={
    "name": P.string("creates a role with this unique name", required=True),
    "type": P.string("the type of the role: Admin, ResourceAdmin, DomainAdmin or User (or give roleid)"),
    "roleid": P.uuid("the role to copy: its type and rules"),
    "description": P.string("the description of the role", max_length=4096),
})
def create_role(ctx, p):
    """Creates a role, empty or as a copy of ``roleid``."""
    if ("type" in p) == ("roleid" in p):
        raise InvalidParameterError("Unable to execute API command createrole: give exactly one of type and roleid")
    source = _role(ctx, p, "roleid") if "roleid" in p else None
    role_type = source.role_type if source else choice(ctx, "type", p["type"], RoleType.ALL)
    role = Role(name=_name_free(ctx, p["name"]), role_type=role_type, description=p.get("description"))
    ctx.session.add(role)
    ctx.session.flush()
    if source is not None:
        for rule in ctx.session.scalars(select(RolePermission).where(RolePermission.role_id == source.id)
                                        .order_by(RolePermission.sort_order, RolePermission.id)):
            ctx.session.add(RolePermission(role_id=role.id, rule=rule.rule, permission=rule.permission,
                                           description=rule.description, sort_order=rule.sort_order))
    ctx.event("ROLE.CREATE", f"Created role {role.name} of type {role.role_type}", role)
    return role_view(role)


@api_command("listRoles", response="role", is_list=True, roles=ADMINS, response_fields=ROLE_FIELDS, since="4.9.0",
             params={"id": P.uuid("the ID of the role"), "name": P.string("the name of the role"),
                     "type": P.string("the type of the role")})
def list_roles(ctx, p):
    """Lists roles (domain admins: those not of type Admin)."""
    query = select(Role).where(Role.removed.is_(None))
    if not ctx.caller.is_root_admin:
        query = query.where(Role.role_type != RoleType.ADMIN)
    if "id" in p:
        query = query.where(Role.uuid == p["id"])
    if "name" in p:
        query = query.where(Role.name == p["name"])
    if "type" in p:
        query = query.where(Role.role_type == choice(ctx, "type", p["type"], RoleType.ALL))
    total, rows = ctx.page(query, name_column=Role.name, order_by=Role.id)
    return total, [role_view(role) for role in rows]


@api_command("updateRole", response="role", roles=ROOT_ONLY, response_fields=ROLE_FIELDS, since="4.9.0", params={
    "id": P.uuid("the ID of the role", required=True), "name": P.string("the new name of the role"),
    "type": P.string("the new type of the role (only while no account has it)"),
    "description": P.string("the description of the role", max_length=4096),
})
def update_role(ctx, p):
    """Updates a role's name, description or (unused roles) type; default roles stay as they are."""
    role = _role(ctx, p)
    if role.is_default:
        raise PermissionDenied(f"The default role {role.name} cannot be changed")
    if "name" in p:
        role.name = _name_free(ctx, p["name"], role)
    if "description" in p:
        role.description = p["description"]
    if "type" in p:
        role_type = choice(ctx, "type", p["type"], RoleType.ALL)
        if role_type != role.role_type and _in_use(ctx, role):
            raise ResourceInUseError(f"Role {role.name} is given to accounts; its type cannot change")
        role.role_type = role_type
    ctx.event("ROLE.UPDATE", f"Updated role {role.name}", role)
    return role_view(role)


def _in_use(ctx, role: Role) -> bool:
    return ctx.session.scalar(select(Account.id).where(Account.role_id == role.id, Account.removed.is_(None))
                              .limit(1)) is not None


@api_command("deleteRole", response="success", roles=ROOT_ONLY, since="4.9.0",
             params={"id": P.uuid("the ID of the role", required=True)})
def delete_role(ctx, p):
    """Deletes a role no account has; default roles cannot be deleted."""
    role = _role(ctx, p)
    if role.is_default:
        raise PermissionDenied(f"The default role {role.name} cannot be deleted")
    if _in_use(ctx, role):
        raise ResourceInUseError(f"Role {role.name} is given to accounts; give them another role first")
    for rule in ctx.session.scalars(select(RolePermission).where(RolePermission.role_id == role.id)):
        ctx.session.delete(rule)
    from core.model import utcnow

    role.removed, role.removed_marker = utcnow(), role.id
    ctx.event("ROLE.DELETE", f"Deleted role {role.name}", role)
    return SUCCESS


# -- permissions ---------------------------------------------------------------------------


def _rules(ctx, role: Role) -> list[RolePermission]:
    return list(ctx.session.scalars(select(RolePermission).where(RolePermission.role_id == role.id)
                                    .order_by(RolePermission.sort_order, RolePermission.id)))


def _permission(ctx, value: str) -> str:
    return choice(ctx, "permission", value, (roles.ALLOW, roles.DENY))


@api_command("createRolePermission", response="rolepermission", roles=ROOT_ONLY, since="4.9.0",
             response_fields=ROLE_PERMISSION_FIELDS, params={
                 "roleid": P.uuid("the ID of the role", required=True),
                 "rule": P.string("the API name or wildcard rule such as list*", required=True),
                 "permission": P.string("the rule permission, allow or deny", required=True),
                 "description": P.string("the description of the role permission", max_length=4096),
             })
def create_role_permission(ctx, p):
    """Adds a rule at the end of a role's rules."""
    role = _role(ctx, p, "roleid")
    if roles.is_root_admin_role(role):
        raise PermissionDenied(f"The {role.name} role may call every API; it takes no rules")
    try:
        rule = roles.validate_rule(p["rule"])
    except InvalidParameterError as exc:
        raise invalid(ctx, "rule", exc.message) from None
    existing = _rules(ctx, role)
    if any(r.rule.lower() == rule.lower() for r in existing):
        raise invalid(ctx, "rule", f"role {role.name} already has a rule {rule}")
    row = RolePermission(role_id=role.id, rule=rule, permission=_permission(ctx, p["permission"]),
                         description=p.get("description"),
                         sort_order=(max((r.sort_order for r in existing), default=-1) + 1))
    ctx.session.add(row)
    ctx.session.flush()
    ctx.event("ROLE.PERMISSION.CREATE", f"Added rule {rule} ({row.permission}) to role {role.name}", role)
    return role_permission_view(row, role)


@api_command("listRolePermissions", response="rolepermission", is_list=True, list_params=False, roles=ROOT_ONLY,
             since="4.9.0", response_fields=ROLE_PERMISSION_FIELDS,
             params={"roleid": P.uuid("the ID of the role")})
def list_role_permissions(ctx, p):
    """Lists a role's rules in the order they are evaluated (every role's without roleid)."""
    if "roleid" in p:
        role = _role(ctx, p, "roleid")
        views = [role_permission_view(rule, role) for rule in _rules(ctx, role)]
    else:
        pairs = ctx.session.execute(select(RolePermission, Role).join(Role, Role.id == RolePermission.role_id)
                                    .where(Role.removed.is_(None))
                                    .order_by(Role.id, RolePermission.sort_order, RolePermission.id)).all()
        views = [role_permission_view(rule, role) for rule, role in pairs]
    return len(views), views


@api_command("updateRolePermission", response="success", roles=ROOT_ONLY, since="4.9.0", params={
    "roleid": P.uuid("the ID of the role", required=True),
    "ruleorder": P.list("the IDs of all the role's permissions, in their new order", item=P.uuid()),
    "ruleid": P.uuid("the ID of the rule whose permission changes (with permission)"),
    "permission": P.string("the new permission of ruleid: allow or deny"),
})
def update_role_permission(ctx, p):
    """Reorders a role's rules (``ruleorder``), or changes one rule's permission (``ruleid`` + ``permission``)."""
    role = _role(ctx, p, "roleid")
    if "ruleorder" in p:
        if "ruleid" in p or "permission" in p:
            raise invalid(ctx, "ruleorder", "permission and ruleid must be mutually exclusive with ruleorder")
        existing = {rule.uuid: rule for rule in _rules(ctx, role)}
        order = p["ruleorder"]
        if sorted(order) != sorted(existing):
            raise invalid(ctx, "ruleorder", "give every permission of the role, each once")
        for position, uuid in enumerate(order):
            existing[uuid].sort_order = position
    elif "ruleid" in p and "permission" in p:
        rule = ctx.get(RolePermission, p["ruleid"], "ruleid", check_owner=False)
        if rule.role_id != role.id:
            raise invalid(ctx, "ruleid", f"the rule is not one of role {role.name}'s")
        rule.permission = _permission(ctx, p["permission"])
    else:
        raise invalid(ctx, "ruleorder", "give ruleorder, or ruleid with permission")
    ctx.event("ROLE.PERMISSION.UPDATE", f"Updated the rules of role {role.name}", role)
    return SUCCESS


@api_command("deleteRolePermission", response="success", roles=ROOT_ONLY, since="4.9.0",
             params={"id": P.uuid("the ID of the role permission", required=True)})
def delete_role_permission(ctx, p):
    """Deletes one rule of a role."""
    rule = ctx.get(RolePermission, p["id"], "id", check_owner=False)
    role = ctx.session.get(Role, rule.role_id)
    ctx.session.delete(rule)
    ctx.event("ROLE.PERMISSION.DELETE", f"Deleted rule {rule.rule} of role {role.name}", role)
    return SUCCESS

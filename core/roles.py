"""Dynamic roles: which API commands an account's role may call.

As CloudStack's DynamicRoleBasedAPIAccessChecker: the default Root Admin role may call
everything. Any other role's rules (``RolePermission``, in ``sort_order``) are tried in
turn; the first whose rule matches the command's name decides (allow or deny). When no
rule matches, the command's declared ``roles`` decide, read for the role's type
(a Resource Admin is read as a Domain Admin: Strato's commands declare three types).
Rules are API names with ``*`` wildcards, matched ignoring case.

An allow rule can give a role a command its type would not get — exactly as in
CloudStack; the command's own ownership checks still apply.

Project roles (CloudStack's ProjectRoleBasedApiAccessChecker) only restrict, on top of the
account's role, what a Regular project member given one may call in that project: when the
request names the project (``projectid``) or acts on a resource the project owns. Their rules
are tried in order, the first match decides; no match, no project role, a project Admin, a
domain or root admin: allowed.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidParameterError, PermissionDenied
from .model import (
    Account,
    AccountType,
    Project,
    ProjectAccount,
    ProjectMemberRole,
    ProjectRolePermission,
    Role,
    RolePermission,
    RoleType,
)

#: the roles every installation has (name, type, description), as CloudStack seeds them
DEFAULT_ROLES = (
    ("Root Admin", RoleType.ADMIN, "Default root admin role"),
    ("Resource Admin", RoleType.RESOURCE_ADMIN, "Default resource admin role"),
    ("Domain Admin", RoleType.DOMAIN_ADMIN, "Default domain admin role"),
    ("User", RoleType.USER, "Default user role"),
)
DEFAULT_ROLE_OF_TYPE = {AccountType.ROOT_ADMIN: RoleType.ADMIN, AccountType.DOMAIN_ADMIN: RoleType.DOMAIN_ADMIN,
                        AccountType.USER: RoleType.USER, AccountType.PROJECT: RoleType.USER}
#: the declared ``ApiCommand.roles`` entry a role type is read as when no rule matches
ANNOTATION_OF_TYPE = {RoleType.ADMIN: "Admin", RoleType.RESOURCE_ADMIN: "DomainAdmin",
                      RoleType.DOMAIN_ADMIN: "DomainAdmin", RoleType.USER: "User"}

ALLOW, DENY = "allow", "deny"
_RULE_TEXT = re.compile(r"^[A-Za-z0-9*]+$")


def seed(session: Session) -> None:
    """Add the default roles that are missing, and give every account without a role
    the default role of its type. Idempotent."""
    present = {role.role_type: role for role in session.scalars(select(Role).where(Role.is_default.is_(True)))}
    for name, role_type, description in DEFAULT_ROLES:
        if role_type not in present:
            present[role_type] = Role(name=name, role_type=role_type, description=description, is_default=True)
            session.add(present[role_type])
    session.flush()
    for account in session.scalars(select(Account).where(Account.role_id.is_(None))):
        account.role_id = present[DEFAULT_ROLE_OF_TYPE.get(account.account_type, RoleType.USER)].id


def default_role(session: Session, role_type: str) -> Role:
    return session.scalars(select(Role).where(Role.is_default.is_(True), Role.role_type == role_type)).one()


def role_for_account_type(session: Session, account_type: int) -> Role:
    return default_role(session, DEFAULT_ROLE_OF_TYPE.get(account_type, RoleType.USER))


def validate_rule(rule: str) -> str:
    """The rule as given when it is an API name or wildcard; 431 otherwise (CloudStack's Rule)."""
    text = (rule or "").strip()
    if not _RULE_TEXT.match(text):
        raise InvalidParameterError(f"Only API names and wildcards are allowed, invalid rule provided: {rule}")
    return text


def rule_pattern(rule: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(part) for part in rule.lower().split("*")) + "$")


def is_root_admin_role(role: Role | None) -> bool:
    return role is not None and role.is_default and role.role_type == RoleType.ADMIN


class Checker:
    """The API access of one role, loaded once (one query) and asked for many commands."""

    def __init__(self, role: Role | None, rules: list[tuple[re.Pattern, bool]], annotation: str):
        self.role = role
        self.rules = rules
        self.annotation = annotation
        self.everything = is_root_admin_role(role)

    def allows(self, command) -> bool:
        if self.everything:
            return True
        name = command.name.lower()
        for pattern, allow in self.rules:
            if pattern.match(name):
                return allow
        return self.annotation in command.roles


def checker_for(session: Session, caller) -> Checker:
    """The ``Checker`` of ``caller``'s role (its account type's default role when it has none)."""
    role = session.get(Role, caller.role_id) if getattr(caller, "role_id", None) else None
    if role is None or role.removed is not None:
        role = role_for_account_type(session, caller.account_type)
    rules = []
    if not is_root_admin_role(role):
        rules = [(rule_pattern(rule), permission == ALLOW) for rule, permission in session.execute(
            select(RolePermission.rule, RolePermission.permission).where(RolePermission.role_id == role.id)
            .order_by(RolePermission.sort_order, RolePermission.id))]
    return Checker(role, rules, ANNOTATION_OF_TYPE.get(role.role_type, "User"))


def may_call(session: Session, caller, command) -> bool:
    """May ``caller`` call ``command`` at all (before any ownership check)?"""
    return checker_for(session, caller).allows(command)


def project_role_allows(session: Session, project_role_id: int, command_name: str) -> bool:
    """Do the rules of this project role let its members call ``command_name``? (No match: yes.)"""
    name = command_name.lower()
    for rule, permission in session.execute(
            select(ProjectRolePermission.rule, ProjectRolePermission.permission)
            .where(ProjectRolePermission.project_role_id == project_role_id)
            .order_by(ProjectRolePermission.sort_order, ProjectRolePermission.id)):
        if rule_pattern(rule).match(name):
            return permission == ALLOW
    return True


def _restricted_memberships(caller):
    """The caller's memberships a project role may restrict: Regular ones with a project role (None:
    admins are never restricted)."""
    if caller is None or caller.is_root_admin or caller.is_domain_admin:
        return None
    from .access import memberships_of  # access imports this module lazily, never at its top

    return select(ProjectAccount.project_id, ProjectAccount.project_role_id).join(
        Project, Project.id == ProjectAccount.project_id).where(
        memberships_of(caller), Project.removed.is_(None), ProjectAccount.role == ProjectMemberRole.REGULAR,
        ProjectAccount.project_role_id.is_not(None))


def projects_denying(session: Session, caller, command_name: str) -> list[int]:
    """Ids of the projects whose project role denies ``caller`` ``command_name`` (what a list with
    ``projectid=-1`` leaves out, as it would answer 531 for each of them named alone)."""
    query = _restricted_memberships(caller)
    if query is None or not command_name:
        return []
    rows = session.execute(query).all()
    allowed = {role_id: project_role_allows(session, role_id, command_name) for role_id in {r[1] for r in rows}}
    return [project_id for project_id, role_id in rows if not allowed[role_id]]


def check_project_role(session: Session, caller, command_name: str, *, project_account_id: int | None = None,
                       project_uuid: str | None = None) -> None:
    """531 when ``caller`` is a Regular member of the project (named by its account or its uuid)
    whose project role denies ``command_name``; a user member's own membership counts, not another
    user's of its account. Callers that are no member are left to the ownership rules."""
    query = _restricted_memberships(caller)
    if query is None or not command_name:
        return
    if project_account_id is not None:
        query = query.where(Project.project_account_id == project_account_id)
    else:
        query = query.where(Project.uuid == project_uuid)
    member = session.execute(query).first()
    if member is not None and not project_role_allows(session, member.project_role_id, command_name):
        raise PermissionDenied(f"The API {command_name} is denied for the user's/account's project role.")


__all__ = ["seed", "check_project_role", "project_role_allows", "projects_denying", "checker_for", "may_call", "validate_rule", "default_role", "role_for_account_type",
           "Checker", "DEFAULT_ROLES", "ALLOW", "DENY"]

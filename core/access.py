"""Who is calling, and what they may see and touch.

CloudStack's rules: a root admin reaches everything; a domain admin reaches
what belongs to its domain and the domains below it; a user reaches what its
own account owns, and what the projects its account (or the user itself) is a member of own.
What a domain owns without an account (a domain's shared network or offering)
is reached from that domain and every domain below it (CloudStack's
``subdomainaccess``, kept simple: always on); changing it is for the admins
above it.
Plugins may add rules through the ``strato_check_access`` hook.

A project's resources belong to the project's own account (type 5), so the
account rules cover them; list commands show them only with ``projectid``.
"""

from __future__ import annotations

import dataclasses

import pluggy
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .commands import ALL_PROJECTS
from .errors import InvalidParameterError, PermissionDenied
from .globalconfig import ConfigKey
from .model import Account, AccountType, Domain, Project, ProjectAccount, ProjectMemberRole, User


@dataclasses.dataclass(frozen=True)
class Caller:
    user_id: int
    user_uuid: str
    username: str
    account_id: int
    account_uuid: str
    account_name: str
    account_type: int
    domain_id: int
    domain_uuid: str
    domain_name: str
    domain_path: str
    #: the account's dynamic role (``core.roles``); None = the default role of its type
    role_id: int | None = None

    @classmethod
    def of(cls, user: User) -> Caller:
        account, domain = user.account, user.account.domain
        return cls(user.id, user.uuid, user.username, account.id, account.uuid, account.name,
                   account.account_type, domain.id, domain.uuid, domain.name, domain.path, account.role_id)

    @classmethod
    def load(cls, session: Session, user_id: int) -> Caller:
        return cls.of(session.get(User, user_id))

    @property
    def role_type(self) -> str:
        return AccountType.ROLE_TYPES[self.account_type]

    @property
    def is_root_admin(self) -> bool:
        return self.account_type == AccountType.ROOT_ADMIN

    @property
    def is_domain_admin(self) -> bool:
        return self.account_type == AccountType.DOMAIN_ADMIN


def domain_ids_under(session: Session, path: str) -> list[int]:
    """Ids of the domain at ``path`` and every domain below it."""
    return list(session.scalars(select(Domain.id).where(Domain.path.startswith(path))))


def can_reach(session: Session, caller: Caller, account_id: int | None, domain_id: int | None) -> bool:
    """May ``caller`` act on a resource owned by this account in this domain?"""
    if caller.is_root_admin:
        return True
    if account_id is None and domain_id is None:  # not owned: zone-wide resources, public offerings
        return True
    if account_id is not None and account_id == caller.account_id:
        return True
    if caller.is_domain_admin and domain_id in domain_ids_under(session, caller.domain_path):
        return True
    if account_id is None:  # a domain's (a shared network, an offering): for its domain and those below
        domain = session.get(Domain, domain_id)
        return domain is not None and domain.removed is None and caller.domain_path.startswith(domain.path)
    return project_role(session, caller, account_id) is not None


def memberships_of(caller: Caller):
    """The ``ProjectAccount`` rows ``caller`` acts through: its account's, and its own user's (a
    membership of another user of the same account gives it nothing)."""
    return (ProjectAccount.account_id == caller.account_id) & or_(
        ProjectAccount.user_id.is_(None), ProjectAccount.user_id == caller.user_id)


def project_role(session: Session, caller: Caller, project_account_id: int) -> str | None:
    """The role (Admin or Regular) of ``caller`` in the live project whose account is
    ``project_account_id``; None when it is no member (or that account is no project's)."""
    return session.scalar(
        select(ProjectAccount.role).join(Project, Project.id == ProjectAccount.project_id)
        .where(Project.project_account_id == project_account_id, Project.removed.is_(None), memberships_of(caller))
        .limit(1))


def find_project(session: Session, caller: Caller, project_uuid: str, *, admin: bool = False,
                 param: str = "projectid") -> Project:
    """The live project ``project_uuid``: 431 when there is none, 531 unless the caller is a
    member (with ``admin``: a project admin), a domain admin above its domain, or a root admin."""
    project = session.scalar(select(Project).where(Project.uuid == project_uuid, Project.removed.is_(None)))
    if project is None:
        raise InvalidParameterError(f"Unable to find project by id {project_uuid} (parameter {param})")
    if caller.is_root_admin:
        return project
    if caller.is_domain_admin and project.domain.path.startswith(caller.domain_path):
        return project
    role = project_role(session, caller, project.project_account_id)
    if role is None or (admin and role != ProjectMemberRole.ADMIN):
        raise PermissionDenied(f"Account {caller.account_name} may not {'manage' if admin else 'access'} "
                               f"project {project.name}")
    return project


def resource_owner(session: Session, caller: Caller, *, account_name: str | None = None,
                   domain_uuid: str | None = None, project_uuid: str | None = None) -> Account:
    """The account a new resource will belong to: the project's account with ``projectid``
    (the caller must reach the project and it must be Active), the named account with
    ``account`` + ``domainid`` (admins, for accounts they reach), else the caller's own.
    431 for what does not exist or is incomplete, 531 for what the caller may not use."""
    if project_uuid is not None:
        if account_name is not None:
            raise InvalidParameterError("account and projectid cannot be given together")
        project = find_project(session, caller, project_uuid)
        if project.state != "Active":
            raise InvalidParameterError(f"project {project.name} is {project.state}; only an Active project "
                                        f"can own new resources")
        return project.project_account
    if account_name is None:
        return session.get(Account, caller.account_id)
    if domain_uuid is None:
        raise InvalidParameterError("account must be given with domainid")
    domain = session.scalar(select(Domain).where(Domain.uuid == domain_uuid, Domain.removed.is_(None)))
    if domain is None:
        raise InvalidParameterError(f"Unable to find domain with id {domain_uuid} (parameter domainid)")
    account = session.scalar(select(Account).where(
        Account.name == account_name, Account.domain_id == domain.id, Account.removed.is_(None),
        Account.account_type != AccountType.PROJECT))
    if account is None:
        raise InvalidParameterError(f"Unable to find account {account_name} in domain {domain.name}")
    if account.id != caller.account_id and not (
            (caller.is_root_admin or caller.is_domain_admin) and can_reach(session, caller, account.id, account.domain_id)):
        raise PermissionDenied(f"Account {caller.account_name} may not act for account {account.name}")
    return account


def check_owner(session: Session, caller: Caller, resource, plugins=None, command: str = "") -> None:
    """Raise 531 unless ``caller`` may act on ``resource`` (a row with account_id/domain_id)."""
    if plugins is not None:
        verdict = plugins.check_access(caller, command, resource)
        if verdict is not None:
            if not verdict:
                raise PermissionDenied(f"Account {caller.account_name} may not access {_describe(resource)}")
            return
    account_id = getattr(resource, "account_id", None)
    if not can_reach(session, caller, account_id, getattr(resource, "domain_id", None)):
        raise PermissionDenied(f"Account {caller.account_name} may not access {_describe(resource)}")
    if account_id is not None and account_id != caller.account_id:  # maybe a project's: its project role
        from . import roles

        roles.check_project_role(session, caller, command, project_account_id=account_id)


def _describe(resource) -> str:
    return f"{type(resource).__name__} {getattr(resource, 'uuid', '')}".strip()


def owner_filter(session: Session, caller: Caller, model, params: dict, command: str = ""):
    """The WHERE clause a list command applies: CloudStack's listall/account/domainid/isrecursive/
    projectid rules.

    Without ``listall`` (and without ``account``/``domainid``) every caller sees only its own
    account's resources, as CloudStack does. ``projectid`` lists that project's resources
    (the caller must reach the project), ``projectid=-1`` those of every project the caller is a
    member of (admins: every project they reach), less those whose project role denies the
    caller ``command`` (named alone, each would answer 531); without it no project's resources
    are listed.
    """
    account_col, domain_col = model.account_id, model.domain_id
    if params.get("projectid"):
        if params.get("account"):
            raise InvalidParameterError("account and projectid cannot be given together")
        if params["projectid"] == ALL_PROJECTS:
            return account_col.in_(_project_accounts(session, caller, params, command))
        return account_col == find_project(session, caller, params["projectid"]).project_account_id
    outside_projects = or_(account_col.is_(None), account_col.not_in(
        select(Account.id).where(Account.account_type == AccountType.PROJECT).scalar_subquery()))
    domain_uuid, account_name = params.get("domainid"), params.get("account")
    if domain_uuid or account_name:
        domain = _domain_for(session, caller, domain_uuid)
        if account_name:
            account = session.scalar(select(Account).where(
                Account.name == account_name, Account.domain_id == domain.id, Account.removed.is_(None),
                Account.account_type != AccountType.PROJECT))
            if account is None or not can_reach(session, caller, account.id, account.domain_id):
                raise PermissionDenied(f"Account {caller.account_name} may not list resources of account "
                                       f"{account_name} in domain {domain.name}")
            return account_col == account.id
        if not (caller.is_root_admin or caller.is_domain_admin):
            return account_col == caller.account_id  # a user's domainid names its own domain
        if params.get("isrecursive"):
            return domain_col.in_(domain_ids_under(session, domain.path)) & outside_projects
        return (domain_col == domain.id) & outside_projects
    if not params.get("listall"):
        return account_col == caller.account_id
    if caller.is_root_admin:
        return outside_projects
    if caller.is_domain_admin:
        return domain_col.in_(domain_ids_under(session, caller.domain_path)) & outside_projects
    return account_col == caller.account_id


def _project_accounts(session: Session, caller: Caller, params: dict, command: str = ""):
    """The accounts of the projects ``projectid=-1`` lists (CloudStack's rules): a user's are the
    projects it is a member of, less those whose project role denies it ``command``; an admin's
    every project it reaches (``domainid``/``isrecursive`` narrow them to a domain)."""
    from . import roles

    query = select(Project.project_account_id).where(Project.removed.is_(None))
    member_of = Project.id.in_(select(ProjectAccount.project_id).where(memberships_of(caller)))
    if caller.is_root_admin or caller.is_domain_admin:
        if params.get("domainid"):
            domain = _domain_for(session, caller, params["domainid"])
            ids = domain_ids_under(session, domain.path) if params.get("isrecursive") else [domain.id]
            query = query.where(Project.domain_id.in_(ids))
        elif caller.is_domain_admin:
            query = query.where(or_(Project.domain_id.in_(domain_ids_under(session, caller.domain_path)), member_of))
        return query.scalar_subquery()
    denied = roles.projects_denying(session, caller, command)
    if denied:
        query = query.where(Project.id.not_in(denied))
    return query.where(member_of).scalar_subquery()


def _domain_for(session: Session, caller: Caller, domain_uuid: str | None) -> Domain:
    from .errors import InvalidParameterError

    if domain_uuid is None:
        return session.get(Domain, caller.domain_id)
    domain = session.scalar(select(Domain).where(Domain.uuid == domain_uuid, Domain.removed.is_(None)))
    if domain is None:
        raise InvalidParameterError(f"Unable to find domain with id {domain_uuid}")
    if not (caller.is_root_admin or domain.path.startswith(caller.domain_path) and caller.is_domain_admin
            or (domain.id == caller.domain_id)):
        raise PermissionDenied(f"Account {caller.account_name} may not list resources of domain {domain.name}")
    return domain


#: the settings of the access rules the API enforces (registered as a built-in plugin)
SECURITY_KEYS = [
    ConfigKey("api.throttling.enabled", "Advanced", "false",
              "Limit the API requests of each account (root admins excepted) to api.throttling.max per "
              "api.throttling.interval seconds; more are answered 429", "Boolean"),
    ConfigKey("api.throttling.interval", "Advanced", "1", "The window, in seconds, API requests are counted in",
              "Integer"),
    ConfigKey("api.throttling.max", "Advanced", "25", "The API requests an account may make in one window", "Integer"),
    ConfigKey("incorrect.login.attempts.allowed", "Advanced", "5",
              "Failed logins in a row after which the user is disabled (the default admin is never disabled)",
              "Integer"),
]


#: the longest ``project.invite.timeout`` (100 years): "never" in practice, and a date it can be subtracted from
INVITE_TIMEOUT_MAX = 100 * 365 * 86400

#: the settings of project membership
PROJECT_KEYS = [
    ConfigKey("project.invite.required", "Project Defaults", "false",
              "If invitation confirmation is required when add account to project. Default value is false",
              "Boolean"),
    ConfigKey("project.invite.timeout", "Project Defaults", "86400",
              "Invitation expiration time (in seconds). Default is 1 day - 86400 seconds", "Integer",
              minimum=1, maximum=INVITE_TIMEOUT_MAX),
    # the mail server email invitations are sent through (CloudStack's names and defaults; unset = "")
    ConfigKey("project.email.sender", "Project Defaults", "",
              "Sender of project invitation email (will be in the From header of the email)"),
    ConfigKey("project.smtp.host", "Project Defaults", "",
              "SMTP hostname used for sending out email project invitations"),
    ConfigKey("project.smtp.port", "Project Defaults", "465", "Port the SMTP server is listening on", "Integer",
              minimum=1, maximum=65535),
    ConfigKey("project.smtp.useAuth", "Project Defaults", "false",
              "If true, use SMTP authentication when sending emails (over SMTPS unless project.smtp.useStartTLS)",
              "Boolean"),
    ConfigKey("project.smtp.useStartTLS", "Project Defaults", "false",
              "With project.smtp.useAuth: upgrade a plain SMTP connection with STARTTLS instead of SMTPS",
              "Boolean"),
    ConfigKey("project.smtp.username", "Project Defaults", "",
              "Username for SMTP authentication (applies only if project.smtp.useAuth is true)"),
    ConfigKey("project.smtp.password", "Secure", "",
              "Password for SMTP authentication (applies only if project.smtp.useAuth is true)"),
]


@pluggy.HookimplMarker("strato")
def strato_configuration_keys():
    return SECURITY_KEYS + PROJECT_KEYS


__all__ = ["Caller", "can_reach", "check_owner", "owner_filter", "domain_ids_under", "find_project",
           "memberships_of", "project_role", "resource_owner"]

"""Domains, accounts, users, their login sessions, roles, projects and resource limits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Resource, utcnow


class AccountType:
    """CloudStack's ``accounttype`` numbers. ``PROJECT`` accounts own a project's
    resources; nobody signs in as one."""

    USER = 0
    ROOT_ADMIN = 1
    DOMAIN_ADMIN = 2
    PROJECT = 5

    ROLE_TYPES = {USER: "User", ROOT_ADMIN: "Admin", DOMAIN_ADMIN: "DomainAdmin"}


class Domain(Resource, Base):
    __tablename__ = "domain"

    name: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    #: "/" for ROOT, "/child/grandchild/" below it, as CloudStack's domain.path
    path: Mapped[str] = mapped_column(String(1024))
    level: Mapped[int] = mapped_column(default=0)
    network_domain: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), default="Active")

    parent: Mapped[Domain | None] = relationship(remote_side="Domain.id")


class Account(Resource, Base):
    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("domain_id", "name", "removed_marker"),)

    name: Mapped[str] = mapped_column(String(255))
    account_type: Mapped[int] = mapped_column(default=AccountType.USER)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    state: Mapped[str] = mapped_column(String(32), default="enabled")
    network_domain: Mapped[str | None] = mapped_column(String(255))
    #: 0 while the account exists, its id once removed, so names can be reused
    removed_marker: Mapped[int] = mapped_column(Integer, default=0)
    #: the dynamic role (``core.roles``); None = the default role of ``account_type``
    role_id: Mapped[int | None] = mapped_column(ForeignKey("role.id"))

    domain: Mapped[Domain] = relationship()
    users: Mapped[list[User]] = relationship(back_populates="account")

    @property
    def role_type(self) -> str:
        return AccountType.ROLE_TYPES.get(self.account_type, "User")

    @property
    def is_root_admin(self) -> bool:
        return self.account_type == AccountType.ROOT_ADMIN


class User(Resource, Base):
    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("username", "domain_id", "removed_marker"),)

    username: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    firstname: Mapped[str] = mapped_column(String(255), default="")
    lastname: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    #: denormalised from the account: usernames are unique per domain
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    state: Mapped[str] = mapped_column(String(32), default="enabled")
    api_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    secret_key: Mapped[str | None] = mapped_column(String(128))
    is_default: Mapped[bool] = mapped_column(default=False)
    removed_marker: Mapped[int] = mapped_column(Integer, default=0)
    #: failed logins in a row (CloudStack's login_attempts); reset by a good login or enableUser
    login_attempts: Mapped[int] = mapped_column(Integer, default=0)

    account: Mapped[Account] = relationship(back_populates="users")


class LoginSession(Base):
    """A session opened by the ``login`` command; ``session_key`` is what clients send back."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    session_key: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"))
    created: Mapped[dt.datetime]
    expires: Mapped[dt.datetime]

    user: Mapped[User] = relationship()


class RoleType:
    """CloudStack's RoleType names, and the account type an account of that role gets."""

    ADMIN, RESOURCE_ADMIN, DOMAIN_ADMIN, USER = "Admin", "ResourceAdmin", "DomainAdmin", "User"
    ALL = (ADMIN, RESOURCE_ADMIN, DOMAIN_ADMIN, USER)
    ACCOUNT_TYPES = {ADMIN: AccountType.ROOT_ADMIN, RESOURCE_ADMIN: AccountType.DOMAIN_ADMIN,
                     DOMAIN_ADMIN: AccountType.DOMAIN_ADMIN, USER: AccountType.USER}


class Role(Resource, Base):
    """A dynamic role: a role type plus ordered allow/deny rules (``RolePermission``)."""

    __tablename__ = "role"
    __table_args__ = (UniqueConstraint("name", "removed_marker"),)

    name: Mapped[str] = mapped_column(String(255))
    role_type: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    #: the four roles every installation has; they cannot be deleted
    is_default: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(32), default="enabled")
    removed_marker: Mapped[int] = mapped_column(Integer, default=0)


class RolePermission(Resource, Base):
    """One rule of a role: an API name or wildcard (``list*``), allow or deny, at ``sort_order``."""

    __tablename__ = "role_permission"
    __table_args__ = (UniqueConstraint("role_id", "rule"),)

    role_id: Mapped[int] = mapped_column(ForeignKey("role.id"), index=True)
    rule: Mapped[str] = mapped_column(String(255))
    permission: Mapped[str] = mapped_column(String(16))  # allow | deny
    description: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class Project(Resource, Base):
    """A project: its resources belong to ``project_account`` (type 5), so every ownership
    rule that works for accounts works for projects; its members are ``ProjectAccount`` rows."""

    __tablename__ = "project"
    __table_args__ = (UniqueConstraint("domain_id", "name", "removed_marker"),)

    name: Mapped[str] = mapped_column(String(255))
    display_text: Mapped[str] = mapped_column(String(4096), default="")
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    project_account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), unique=True)
    state: Mapped[str] = mapped_column(String(32), default="Active")
    removed_marker: Mapped[int] = mapped_column(Integer, default=0)

    domain: Mapped[Domain] = relationship()
    project_account: Mapped[Account] = relationship()


class ProjectMemberRole:
    """What a member is in a project (CloudStack's ProjectAccount.Role): an Admin manages the
    project and its members, a Regular member uses its resources."""

    ADMIN, REGULAR = "Admin", "Regular"
    ALL = (ADMIN, REGULAR)


class ProjectRole(Resource, Base):
    """A project's own role (CloudStack 4.15+): ordered allow/deny rules (``ProjectRolePermission``)
    that restrict what a Regular member given this role may call in the project."""

    __tablename__ = "project_role"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)


class ProjectRolePermission(Resource, Base):
    """One rule of a project role: an API name or wildcard, allow or deny, at ``sort_order``."""

    __tablename__ = "project_role_permission"
    __table_args__ = (UniqueConstraint("project_role_id", "rule"),)

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    project_role_id: Mapped[int] = mapped_column(ForeignKey("project_role.id"), index=True)
    rule: Mapped[str] = mapped_column(String(255))
    permission: Mapped[str] = mapped_column(String(16))  # allow | deny
    description: Mapped[str | None] = mapped_column(Text)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)


class ProjectAccount(Base):
    """A membership of a project, with its role there (Admin or Regular) and optionally a project
    role restricting what it may call there: an account's (``user_id`` None: every user of the
    account acts in the project) or one user's (CloudStack 4.15+ addUserToProject: only that user,
    not the other users of its account)."""

    __tablename__ = "project_account"
    __table_args__ = (UniqueConstraint("project_id", "account_id", "user_marker"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), index=True)
    #: ``user_id`` or 0, so the unique key holds for accounts too (NULLs never collide in one)
    user_marker: Mapped[int] = mapped_column(Integer, default=0)
    role: Mapped[str] = mapped_column(String(16), default=ProjectMemberRole.REGULAR)
    project_role_id: Mapped[int | None] = mapped_column(ForeignKey("project_role.id"))
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship()
    user: Mapped[User | None] = relationship()


class InvitationState:
    PENDING, COMPLETED, DECLINED, EXPIRED = "Pending", "Completed", "Declined", "Expired"
    ALL = (PENDING, COMPLETED, DECLINED, EXPIRED)


class ProjectInvitation(Resource, Base):
    """An invitation to join a project (``project.invite.required``): to an account, accepted by
    that account, or to an email address, accepted by whoever presents ``token``. With ``user_id``
    (addUserToProject) accepting makes that user, not its account, a member."""

    __tablename__ = "project_invitation"

    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    email: Mapped[str | None] = mapped_column(String(255))
    token: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=InvitationState.PENDING)
    role: Mapped[str] = mapped_column(String(16), default=ProjectMemberRole.REGULAR)
    project_role_id: Mapped[int | None] = mapped_column(ForeignKey("project_role.id"))

    project: Mapped[Project] = relationship()
    account: Mapped[Account | None] = relationship()
    user: Mapped[User | None] = relationship()


class ResourceLimit(Base):
    """An explicit limit (``updateResourceLimit``) of one resource type for an account or domain.

    Without a row the account's limit is the global ``max.account.*`` / ``max.project.*``
    setting and a domain's is its nearest ancestor's (ROOT: unlimited). ``max`` is in the
    API's unit (GiB for storage, MiB for memory); -1 means unlimited.
    """

    __tablename__ = "resource_limit"
    __table_args__ = (UniqueConstraint("account_id", "resource_type"), UniqueConstraint("domain_id", "resource_type"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    resource_type: Mapped[int] = mapped_column(Integer)
    max: Mapped[int] = mapped_column(BigInteger, default=-1)


class ResourceCount(Base):
    """What an account or a domain (with everything below it) holds of one resource type.

    ``count`` moves only by the conditional UPDATEs of ``core.orchestration.limits``
    (bytes for storage, MiB for memory), in the transaction that creates or removes the
    resource, so concurrent creations never pass a limit.
    """

    __tablename__ = "resource_count"
    __table_args__ = (UniqueConstraint("account_id", "resource_type"), UniqueConstraint("domain_id", "resource_type"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    resource_type: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(BigInteger, default=0)

"""Domains, accounts, users and their login sessions."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Resource


class AccountType:
    """CloudStack's ``accounttype`` numbers."""

    USER = 0
    ROOT_ADMIN = 1
    DOMAIN_ADMIN = 2

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

    domain: Mapped[Domain] = relationship()
    users: Mapped[list[User]] = relationship(back_populates="account")

    @property
    def role_type(self) -> str:
        return AccountType.ROLE_TYPES[self.account_type]

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

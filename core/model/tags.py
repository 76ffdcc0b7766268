"""Resource tags (``createTags``): key/value pairs on resources, owned as the resource is."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Resource


class ResourceTag(Resource, Base):
    __tablename__ = "resource_tag"
    __table_args__ = (UniqueConstraint("resource_type", "resource_id", "key"),
                      Index("ix_resource_tag_lookup", "resource_type", "key", "value"))

    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(String(255))
    #: CloudStack's ResourceObjectType name: UserVm, Volume, Template, Network, Project, ...
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[int] = mapped_column(Integer)
    resource_uuid: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    customer: Mapped[str | None] = mapped_column(String(255))

"""Service offerings (compute size) and disk offerings."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Bytes, Resource


class ServiceOffering(Resource, Base):
    __tablename__ = "service_offering"

    name: Mapped[str] = mapped_column(String(255))
    display_text: Mapped[str] = mapped_column(String(4096))
    cpu_number: Mapped[int] = mapped_column(default=1)
    cpu_speed: Mapped[int] = mapped_column(default=500)  # MHz
    memory: Mapped[int] = mapped_column(default=512)  # MiB, as CloudStack
    host_tag: Mapped[str | None] = mapped_column(String(255))
    storage_tags: Mapped[str | None] = mapped_column(String(1024))
    storage_type: Mapped[str] = mapped_column(String(32), default="shared")
    offer_ha: Mapped[bool] = mapped_column(default=False)
    limit_cpu_use: Mapped[bool] = mapped_column(default=False)
    is_system: Mapped[bool] = mapped_column(default=False)
    root_disk_size: Mapped[int] = Bytes()  # 0: the template's size
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    state: Mapped[str] = mapped_column(String(32), default="Active")


class DiskOffering(Resource, Base):
    __tablename__ = "disk_offering"

    name: Mapped[str] = mapped_column(String(255))
    display_text: Mapped[str] = mapped_column(String(4096))
    disk_size: Mapped[int] = Bytes()  # bytes; 0 with customized
    customized: Mapped[bool] = mapped_column(default=False)
    storage_tags: Mapped[str | None] = mapped_column(String(1024))
    storage_type: Mapped[str] = mapped_column(String(32), default="shared")
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    state: Mapped[str] = mapped_column(String(32), default="Active")

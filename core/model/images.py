"""OS types, templates and where each template is stored."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Bytes, Resource, utcnow


class OsCategory(Resource, Base):
    __tablename__ = "os_category"

    name: Mapped[str] = mapped_column(String(255), unique=True)


class OsType(Resource, Base):
    __tablename__ = "os_type"

    description: Mapped[str] = mapped_column(String(255), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("os_category.id"))
    is_user_defined: Mapped[bool] = mapped_column(default=False)

    category: Mapped[OsCategory] = relationship()


class TemplateState:
    """The template's own state (CloudStack's VirtualMachineTemplate.State)."""

    ACTIVE = "Active"
    INACTIVE = "Inactive"


class DownloadState:
    """A template's state on one store (CloudStack's Status of template_store_ref)."""

    NOT_DOWNLOADED = "NOT_DOWNLOADED"
    DOWNLOAD_IN_PROGRESS = "DOWNLOAD_IN_PROGRESS"
    DOWNLOADED = "DOWNLOADED"
    DOWNLOAD_ERROR = "DOWNLOAD_ERROR"
    ABANDONED = "ABANDONED"


class Template(Resource, Base):
    __tablename__ = "template"

    name: Mapped[str] = mapped_column(String(255))
    display_text: Mapped[str] = mapped_column(String(4096))
    format: Mapped[str] = mapped_column(String(32))  # QCOW2, RAW, VHD, OVA, ISO
    hypervisor: Mapped[str] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(String(2048))
    checksum: Mapped[str | None] = mapped_column(String(255))
    os_type_id: Mapped[int] = mapped_column(ForeignKey("os_type.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    template_type: Mapped[str] = mapped_column(String(32), default="USER")  # USER, BUILTIN, SYSTEM
    is_public: Mapped[bool] = mapped_column(default=False)
    is_featured: Mapped[bool] = mapped_column(default=False)
    is_extractable: Mapped[bool] = mapped_column(default=False)
    password_enabled: Mapped[bool] = mapped_column(default=False)
    is_dynamically_scalable: Mapped[bool] = mapped_column(default=False)
    requires_hvm: Mapped[bool] = mapped_column(default=True)
    bits: Mapped[int] = mapped_column(default=64)
    size: Mapped[int] = Bytes()  # virtual size
    state: Mapped[str] = mapped_column(String(32), default=TemplateState.ACTIVE)
    #: zone it was registered for; None = all zones (crossZones)
    zone_id: Mapped[int | None] = mapped_column(ForeignKey("zone.id"))
    details: Mapped[dict] = mapped_column(default=dict)

    os_type: Mapped[OsType] = relationship()
    stores: Mapped[list[TemplateStoreRef]] = relationship(back_populates="template")


class TemplateStoreRef(Base):
    """A template's copy on one image store, with its download state."""

    __tablename__ = "template_store_ref"
    __table_args__ = (UniqueConstraint("template_id", "store_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("template.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("image_store.id"))
    download_state: Mapped[str] = mapped_column(String(32), default=DownloadState.NOT_DOWNLOADED)
    download_percent: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    install_path: Mapped[str | None] = mapped_column(String(2048))
    size: Mapped[int] = Bytes()
    physical_size: Mapped[int] = Bytes()
    created: Mapped[dt.datetime] = mapped_column(default=utcnow)

    template: Mapped[Template] = relationship(back_populates="stores")
    store: Mapped["ImageStore"] = relationship()  # noqa: F821


from .infrastructure import ImageStore  # noqa: E402,F401  (for the relationship above)

"""Guest networks (the part of the network model the core needs to give a NIC an address)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Resource


class Network(Resource, Base):
    __tablename__ = "network"

    name: Mapped[str] = mapped_column(String(255))
    display_text: Mapped[str] = mapped_column(String(1024), default="")
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    #: None for a zone-wide shared network
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    guest_type: Mapped[str] = mapped_column(String(32), default="Shared")  # Shared | Isolated | L2
    traffic_type: Mapped[str] = mapped_column(String(32), default="Guest")
    cidr: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str | None] = mapped_column(String(64))
    netmask: Mapped[str | None] = mapped_column(String(64))
    start_ip: Mapped[str | None] = mapped_column(String(64))
    end_ip: Mapped[str | None] = mapped_column(String(64))
    vlan: Mapped[str | None] = mapped_column(String(64))
    #: the network plugin providing its services, or None for a plain bridge
    provider: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), default="Allocated")
    details: Mapped[dict] = mapped_column(default=dict)

"""Guest networks: the network a NIC takes its address from, what it is made of
(offering, physical network, VLAN) and its state."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, Resource


class NetworkState:
    """CloudStack's Network.State, plus ``Error``: the router failed to come up (the reason
    is in the router's ``last_error``); ``restartNetwork`` tries again."""

    ALLOCATED = "Allocated"
    SETUP = "Setup"
    IMPLEMENTING = "Implementing"
    IMPLEMENTED = "Implemented"
    SHUTDOWN = "Shutdown"
    DESTROY = "Destroy"
    ERROR = "Error"


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
    cidr: Mapped[str | None] = mapped_column(String(64))
    gateway: Mapped[str | None] = mapped_column(String(64))
    netmask: Mapped[str | None] = mapped_column(String(64))
    start_ip: Mapped[str | None] = mapped_column(String(64))
    end_ip: Mapped[str | None] = mapped_column(String(64))
    vlan: Mapped[str | None] = mapped_column(String(64))
    #: the network plugin providing its services, or None for a plain bridge
    provider: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), default=NetworkState.ALLOCATED)
    details: Mapped[dict] = mapped_column(default=dict)
    network_offering_id: Mapped[int | None] = mapped_column(ForeignKey("network_offering.id"))
    physical_network_id: Mapped[int | None] = mapped_column(ForeignKey("physical_network.id"))
    network_domain: Mapped[str | None] = mapped_column(String(255))
    #: Account: only the owner uses it; Domain: every account of the domain (shared networks)
    acl_type: Mapped[str | None] = mapped_column(String(32))
    dns1: Mapped[str | None] = mapped_column(String(64))
    dns2: Mapped[str | None] = mapped_column(String(64))
    #: the VLAN came with the request (shared, L2) rather than from the physical network's range
    vlan_specified: Mapped[bool] = mapped_column(default=False)
    restart_required: Mapped[bool] = mapped_column(default=False)
    display_network: Mapped[bool] = mapped_column(default=True)
    subdomain_access: Mapped[bool | None] = mapped_column()

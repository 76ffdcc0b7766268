"""Networking beyond a NIC's address: physical networks and their traffic types, network
service providers, network offerings, public IP ranges and addresses, the rules on them
(firewall, egress, port forwarding, static NAT, load balancing), remote-access VPN and
its users, guest VLANs, and the virtual routers that serve guest networks.

Uniqueness that concurrent commands could break (an address, a VLAN, a VPN per IP) is
held by constraints, not by read-then-write checks.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Resource, utcnow


class PhysicalNetwork(Resource, Base):
    """CloudStack's physical network: the wires of a zone that guest, public,
    management and storage traffic travel on."""

    __tablename__ = "physical_network"

    name: Mapped[str] = mapped_column(String(255))
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"), index=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    state: Mapped[str] = mapped_column(String(32), default="Disabled")  # Enabled | Disabled
    #: "VLAN", "VXLAN", "GRE", ... as given (comma-separated); only VLAN is acted on
    isolation_methods: Mapped[str] = mapped_column(String(255), default="VLAN")
    #: guest VLAN ranges, CloudStack's "100-199,300-310"
    vlan: Mapped[str | None] = mapped_column(String(1024))
    broadcast_domain_range: Mapped[str] = mapped_column(String(32), default="ZONE")
    tags: Mapped[str | None] = mapped_column(String(1024))
    network_speed: Mapped[str | None] = mapped_column(String(32))


class PhysicalNetworkTrafficType(Resource, Base):
    """A traffic type carried by a physical network, with the per-hypervisor labels
    (bridge or device names) that say where it leaves the host."""

    __tablename__ = "physical_network_traffic_type"
    __table_args__ = (UniqueConstraint("physical_network_id", "traffic_type", "removed_marker"),)

    physical_network_id: Mapped[int] = mapped_column(ForeignKey("physical_network.id"), index=True)
    traffic_type: Mapped[str] = mapped_column(String(32))  # Guest | Public | Management | Storage
    kvm_label: Mapped[str | None] = mapped_column(String(255))
    xen_label: Mapped[str | None] = mapped_column(String(255))
    vmware_label: Mapped[str | None] = mapped_column(String(255))
    hyperv_label: Mapped[str | None] = mapped_column(String(255))
    #: 0 while present, the row's id once removed (so the type can be added again)
    removed_marker: Mapped[int] = mapped_column(Integer, default=0)


class NetworkServiceProvider(Resource, Base):
    """A provider (VirtualRouter, ...) on a physical network, CloudStack's
    ``physical_network_service_providers``; the virtual router's own element settings
    (``configureVirtualRouterElement``) are ``element_enabled``."""

    __tablename__ = "physical_network_service_provider"
    __table_args__ = (UniqueConstraint("physical_network_id", "provider_name"),)

    physical_network_id: Mapped[int] = mapped_column(ForeignKey("physical_network.id"), index=True)
    provider_name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), default="Enabled")  # Enabled | Disabled | Shutdown
    #: comma-separated CloudStack service names the provider offers here
    services: Mapped[str] = mapped_column(String(1024), default="")
    element_enabled: Mapped[bool] = mapped_column(default=True)
    element_uuid: Mapped[str | None] = mapped_column(String(40), unique=True)


class NetworkOffering(Resource, Base):
    """What a guest network of this offering is: its type, its services and their providers."""

    __tablename__ = "network_offering"

    name: Mapped[str] = mapped_column(String(255))
    #: CloudStack's unique name of a default offering (DefaultSharedNetworkOffering, ...)
    unique_name: Mapped[str | None] = mapped_column(String(255), unique=True)
    display_text: Mapped[str] = mapped_column(String(4096), default="")
    guest_type: Mapped[str] = mapped_column(String(32))  # Isolated | Shared | L2
    traffic_type: Mapped[str] = mapped_column(String(32), default="Guest")
    state: Mapped[str] = mapped_column(String(32), default="Disabled")  # Enabled | Disabled
    #: Required: networks of it are made for accounts automatically; Optional otherwise
    availability: Mapped[str] = mapped_column(String(32), default="Optional")
    is_default: Mapped[bool] = mapped_column(default=False)
    is_system: Mapped[bool] = mapped_column(default=False)
    specify_vlan: Mapped[bool] = mapped_column(default=False)
    specify_ip_ranges: Mapped[bool] = mapped_column(default=False)
    conserve_mode: Mapped[bool] = mapped_column(default=True)
    #: True: guests may send anywhere unless an egress rule says no; False: only where a rule allows
    egress_default_policy: Mapped[bool] = mapped_column(default=True)
    is_persistent: Mapped[bool] = mapped_column(default=False)
    network_rate: Mapped[int | None] = mapped_column()
    tags: Mapped[str | None] = mapped_column(String(4096))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    #: the (system) service offering of the offering's routers, as CloudStack names one
    service_offering_id: Mapped[int | None] = mapped_column(ForeignKey("service_offering.id"))
    #: LB/source-NAT capabilities CloudStack keeps as columns: {"SupportedLbAlgorithms": ..., ...}
    details: Mapped[dict] = mapped_column(default=dict)

    services: Mapped[list[NetworkOfferingService]] = relationship(
        back_populates="offering", order_by="NetworkOfferingService.id", cascade="all, delete-orphan")

    def providers(self) -> dict[str, str]:
        """{service: provider} of this offering."""
        return {s.service: s.provider for s in self.services}


class NetworkOfferingService(Base):
    """One service of an offering and who provides it (``ntwk_offering_service_map``)."""

    __tablename__ = "network_offering_service"
    __table_args__ = (UniqueConstraint("offering_id", "service"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    offering_id: Mapped[int] = mapped_column(ForeignKey("network_offering.id"))
    service: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(64))

    offering: Mapped[NetworkOffering] = relationship(back_populates="services")


class VlanIpRange(Resource, Base):
    """An IP range (CloudStack's ``vlan`` table): public addresses (``VirtualNetwork``)
    or a shared guest network's addresses (``DirectAttached``, with ``network_id``)."""

    __tablename__ = "vlan"

    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"), index=True)
    physical_network_id: Mapped[int | None] = mapped_column(ForeignKey("physical_network.id"))
    network_id: Mapped[int | None] = mapped_column(ForeignKey("network.id"))
    pod_id: Mapped[int | None] = mapped_column(ForeignKey("pod.id"))
    vlan_tag: Mapped[str] = mapped_column(String(64), default="untagged")
    gateway: Mapped[str] = mapped_column(String(64))
    netmask: Mapped[str] = mapped_column(String(64))
    start_ip: Mapped[str] = mapped_column(String(64))
    end_ip: Mapped[str] = mapped_column(String(64))
    vlan_type: Mapped[str] = mapped_column(String(32), default="VirtualNetwork")
    #: a range dedicated to one account (or domain)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    for_system_vms: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(String(255))


class IpState:
    """CloudStack's IpAddress.State."""

    FREE = "Free"
    ALLOCATING = "Allocating"
    ALLOCATED = "Allocated"
    RELEASING = "Releasing"


class PublicIpAddress(Resource, Base):
    """One public address of a range (CloudStack's ``user_ip_address``): every address of
    a range has its row from ``createVlanIpRange`` on; acquiring one sets its owner."""

    __tablename__ = "user_ip_address"
    __table_args__ = (UniqueConstraint("zone_id", "address"),)

    address: Mapped[str] = mapped_column(String(64))
    #: the address as an integer, for ordering and range checks on every database
    address_int: Mapped[int] = mapped_column(BigInteger, index=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    vlan_id: Mapped[int] = mapped_column(ForeignKey("vlan.id"), index=True)
    physical_network_id: Mapped[int | None] = mapped_column(ForeignKey("physical_network.id"))
    state: Mapped[str] = mapped_column(String(32), default=IpState.FREE, index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    #: the guest network the address is associated with
    network_id: Mapped[int | None] = mapped_column(ForeignKey("network.id"), index=True)
    is_source_nat: Mapped[bool] = mapped_column(default=False)
    is_system: Mapped[bool] = mapped_column(default=False)
    #: static NAT (one-to-one): the VM and its guest address
    is_static_nat: Mapped[bool] = mapped_column(default=False)
    vm_id: Mapped[int | None] = mapped_column(ForeignKey("vm_instance.id"))
    vm_ip: Mapped[str | None] = mapped_column(String(64))
    allocated: Mapped[dt.datetime | None] = mapped_column()
    for_display: Mapped[bool] = mapped_column(default=True)

    vlan: Mapped[VlanIpRange] = relationship()


class RuleState:
    """CloudStack's FirewallRule.State: ``Add`` is written, ``Active`` is on the router,
    ``Revoke`` is being taken off it."""

    STAGED = "Staged"
    ADD = "Add"
    ACTIVE = "Active"
    REVOKE = "Revoke"


class NetworkRule(Resource, Base):
    """A rule on a guest network (CloudStack's ``firewall_rules`` with its
    port-forwarding and load-balancer extensions in one table).

    ``purpose``: Firewall (ingress on ``ip_address_id``, or egress with
    ``traffic_type=Egress`` and no IP), PortForwarding, LoadBalancing. Ports are the
    public side (``start_port``-``end_port``); ``dest_*`` the guest side.
    """

    __tablename__ = "firewall_rules"

    network_id: Mapped[int] = mapped_column(ForeignKey("network.id"), index=True)
    ip_address_id: Mapped[int | None] = mapped_column(ForeignKey("user_ip_address.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    purpose: Mapped[str] = mapped_column(String(32))  # Firewall | PortForwarding | LoadBalancing
    traffic_type: Mapped[str] = mapped_column(String(32), default="Ingress")  # Ingress | Egress
    protocol: Mapped[str] = mapped_column(String(16))  # tcp | udp | icmp | all
    start_port: Mapped[int | None] = mapped_column()
    end_port: Mapped[int | None] = mapped_column()
    icmp_type: Mapped[int | None] = mapped_column()
    icmp_code: Mapped[int | None] = mapped_column()
    source_cidrs: Mapped[list] = mapped_column(JSON, default=list)
    dest_cidrs: Mapped[list] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(32), default=RuleState.ADD)
    #: the firewall rule a port-forwarding rule opened for itself (openfirewall=true)
    related_id: Mapped[int | None] = mapped_column(ForeignKey("firewall_rules.id"))
    # port forwarding
    vm_id: Mapped[int | None] = mapped_column(ForeignKey("vm_instance.id"), index=True)
    dest_ip: Mapped[str | None] = mapped_column(String(64))
    dest_port_start: Mapped[int | None] = mapped_column()
    dest_port_end: Mapped[int | None] = mapped_column()
    # load balancing
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(4096))
    algorithm: Mapped[str | None] = mapped_column(String(32))
    lb_protocol: Mapped[str | None] = mapped_column(String(32))
    for_display: Mapped[bool] = mapped_column(default=True)

    ip_address: Mapped[PublicIpAddress | None] = relationship()
    members: Mapped[list[LoadBalancerMember]] = relationship(
        back_populates="rule", order_by="LoadBalancerMember.id", cascade="all, delete-orphan")
    stickiness: Mapped[list[StickinessPolicy]] = relationship(
        back_populates="rule", order_by="StickinessPolicy.id", cascade="all, delete-orphan")


class LoadBalancerMember(Base):
    """A VM (guest address) behind a load-balancer rule (``load_balancer_vm_map``)."""

    __tablename__ = "load_balancer_vm_map"
    __table_args__ = (UniqueConstraint("rule_id", "vm_id", "vm_ip"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("firewall_rules.id"), index=True)
    vm_id: Mapped[int] = mapped_column(ForeignKey("vm_instance.id"), index=True)
    vm_ip: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), default=RuleState.ADD)

    rule: Mapped[NetworkRule] = relationship(back_populates="members")


class StickinessPolicy(Resource, Base):
    """A load-balancer stickiness policy (LbCookie, AppCookie or SourceBased)."""

    __tablename__ = "load_balancer_stickiness_policies"

    rule_id: Mapped[int] = mapped_column(ForeignKey("firewall_rules.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(4096))
    method_name: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(32), default=RuleState.ADD)

    rule: Mapped[NetworkRule] = relationship(back_populates="stickiness")


class RemoteAccessVpn(Resource, Base):
    """Remote-access VPN on a network's public address (one per address)."""

    __tablename__ = "remote_access_vpn"

    network_id: Mapped[int] = mapped_column(ForeignKey("network.id"), index=True)
    ip_address_id: Mapped[int] = mapped_column(ForeignKey("user_ip_address.id"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    #: the router's own address on the VPN, and the client pool ("10.1.2.2-10.1.2.8")
    local_ip: Mapped[str] = mapped_column(String(64))
    ip_range: Mapped[str] = mapped_column(String(64))
    pre_shared_key: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), default="Added")  # Added | Running | Removed
    #: the server's certificate and key (PEM); clients pin the certificate's fingerprint
    details: Mapped[dict] = mapped_column(default=dict)
    for_display: Mapped[bool] = mapped_column(default=True)

    ip_address: Mapped[PublicIpAddress] = relationship()


class VpnUser(Resource, Base):
    """A remote-access VPN user of an account; valid on every VPN of the account."""

    __tablename__ = "vpn_users"
    __table_args__ = (UniqueConstraint("account_id", "username"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id"))
    username: Mapped[str] = mapped_column(String(255))
    #: PBKDF2-SHA256 (core.passwords), checked by the router's VPN daemon
    password_hash: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), default=RuleState.ADD)


class GuestVlan(Base):
    """A guest VLAN of a physical network taken by a network (``op_dc_vnet_alloc``)."""

    __tablename__ = "guest_vlan"
    __table_args__ = (UniqueConstraint("physical_network_id", "vlan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    physical_network_id: Mapped[int] = mapped_column(ForeignKey("physical_network.id"))
    vlan: Mapped[int] = mapped_column()
    network_id: Mapped[int] = mapped_column(ForeignKey("network.id"), index=True)
    taken: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RouterState:
    STARTING = "Starting"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ERROR = "Error"


class Router(Resource, Base):
    """The virtual router of a guest network (CloudStack's ``domain_router``): here a
    network namespace on the management host, not a VM, so it holds no host capacity."""

    __tablename__ = "domain_router"

    name: Mapped[str] = mapped_column(String(255))
    network_id: Mapped[int] = mapped_column(ForeignKey("network.id"), index=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("zone.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id"))
    state: Mapped[str] = mapped_column(String(32), default=RouterState.STOPPED)
    #: the plugin (network element) that runs it
    provider: Mapped[str] = mapped_column(String(64))
    guest_ip: Mapped[str | None] = mapped_column(String(64))
    guest_mac: Mapped[str | None] = mapped_column(String(17))
    public_ip: Mapped[str | None] = mapped_column(String(64))
    public_mac: Mapped[str | None] = mapped_column(String(17))
    #: where it runs (the management host's name)
    host_name: Mapped[str | None] = mapped_column(String(255))
    #: why it is in Error, when it is
    last_error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(32), default="1.0")
    updated: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: the element's own data (interface names, the hash of what it applied)
    details: Mapped[dict] = mapped_column(default=dict)

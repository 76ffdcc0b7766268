"""Views of guest networks, network offerings, physical networks and their traffic types
and providers, IP ranges, public addresses and routers (CloudStack's NetworkResponse,
NetworkOfferingResponse, PhysicalNetworkResponse, TrafficTypeResponse, ProviderResponse,
VlanIpRangeResponse, IPAddressResponse, DomainRouterResponse)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.model import (
    Domain,
    Network,
    NetworkOffering,
    NetworkServiceProvider,
    Nic,
    PhysicalNetwork,
    PhysicalNetworkTrafficType,
    Pod,
    PublicIpAddress,
    Router,
    ServiceOffering,
    VirtualMachine,
    VlanIpRange,
    Zone,
)

from .common import OWNER_FIELDS, compact, cs_date, owner_fields


def _zone(session: Session, zone_id: int | None) -> dict:
    zone = session.get(Zone, zone_id) if zone_id else None
    return {"zoneid": zone.uuid, "zonename": zone.name} if zone else {}


def _uuid(session: Session, model, row_id: int | None) -> str | None:
    return session.get(model, row_id).uuid if row_id else None


def service_list(providers: dict[str, str], capabilities: dict | None = None) -> list[dict]:
    """CloudStack's ``service`` list: name, providers, capabilities."""
    capabilities = capabilities or {}
    items = []
    for name in sorted(providers):
        entry = {"name": name, "provider": [{"name": providers[name]}]}
        caps = [{"name": key, "value": value, "canchooseservicecapability": False}
                for key, value in sorted(capabilities.items())
                if (name == "Lb" and key.startswith("SupportedLb")) or (name == "SourceNat" and key in (
                    "SupportedSourceNatTypes", "RedundantRouter"))]
        if caps:
            entry["capability"] = caps
        items.append(entry)
    return items


NETWORK_FIELDS = {
    "id": "the id of the network", "name": "the name of the network", "displaytext": "the displaytext of the network",
    "zoneid": "zone id of the network", "zonename": "the name of the zone", "type": "the type of the network",
    "traffictype": "the traffic type", "cidr": "the network CIDR", "gateway": "the network's gateway",
    "netmask": "the network's netmask", "state": "state of the network", "vlan": "the VLAN (root admins)",
    "broadcasturi": "the broadcast URI (root admins)", "networkofferingid": "the network offering",
    "networkofferingname": "its name", "networkdomain": "the network domain", "acltype": "Account or Domain",
    "physicalnetworkid": "the physical network", "service": "the services of the network",
    "restartrequired": "true if the network needs a restart", "isdefault": "true for a default network",
    "canusefordeploy": "true if VMs can be deployed on it", "dns1": "the first DNS", "dns2": "the second DNS",
    "egressdefaultpolicy": "true: egress is allowed unless a rule blocks it", "created": "when it was created",
    "specifyipranges": "true if the network takes IP ranges", "issystem": "true for a system network",
    **OWNER_FIELDS,
}


def network_view(session: Session, network: Network, *, admin: bool = False) -> dict:
    offering = session.get(NetworkOffering, network.network_offering_id) if network.network_offering_id else None
    providers = offering.providers() if offering else {}
    zone = session.get(Zone, network.zone_id)
    data = {
        "id": network.uuid, "name": network.name, "displaytext": network.display_text,
        "type": network.guest_type, "traffictype": network.traffic_type, "cidr": network.cidr,
        "gateway": network.gateway, "netmask": network.netmask, "state": network.state,
        "networkdomain": network.network_domain, "acltype": network.acl_type or (
            "Domain" if network.account_id is None else "Account"),
        "networkofferingid": offering.uuid if offering else None,
        "networkofferingname": offering.name if offering else None,
        "networkofferingdisplaytext": offering.display_text if offering else None,
        "networkofferingavailability": offering.availability if offering else None,
        "networkofferingconservemode": offering.conserve_mode if offering else None,
        "egressdefaultpolicy": offering.egress_default_policy if offering and "Firewall" in providers else None,
        "specifyipranges": offering.specify_ip_ranges if offering else None,
        "physicalnetworkid": _uuid(session, PhysicalNetwork, network.physical_network_id),
        "broadcastdomaintype": "Vlan" if network.vlan and network.vlan != "untagged" else "Native",
        "dns1": network.dns1 or zone.dns1, "dns2": network.dns2 or zone.dns2,
        "restartrequired": network.restart_required, "isdefault": network.account_id is None or (
            offering is not None and offering.availability == "Required"),
        "canusefordeploy": network.state not in ("Destroy",), "issystem": False, "ispersistent": False,
        "service": service_list(providers, offering.details if offering else None),
        "subdomainaccess": network.subdomain_access, "displaynetwork": network.display_network,
        "created": cs_date(network.created), "redundantrouter": False, "tags": [],
        **_zone(session, network.zone_id),
        **owner_fields(session, network.account_id, network.domain_id),
    }
    if admin and network.vlan:
        physical = session.get(PhysicalNetwork, network.physical_network_id) if network.physical_network_id else None
        scheme = "vxlan" if physical is not None and not network.vlan_specified and \
            (physical.isolation_methods or "").upper().startswith("VXLAN") else "vlan"
        data.update(vlan=network.vlan, broadcasturi=f"{scheme}://{network.vlan}")
    return compact(data)


OFFERING_FIELDS = {
    "id": "the id of the network offering", "name": "the name", "displaytext": "the display text",
    "guestiptype": "Isolated, Shared or L2", "traffictype": "the traffic type", "state": "Enabled or Disabled",
    "availability": "Required or Optional", "isdefault": "true for a default offering",
    "specifyvlan": "true if networks of it take a VLAN", "specifyipranges": "true if they take IP ranges",
    "conservemode": "true if IP conserve mode is on", "egressdefaultpolicy": "true: egress allowed by default",
    "service": "the services and their providers", "networkrate": "the rate in Mbit/s", "tags": "the tags",
    "forvpc": "true for VPC networks", "ispersistent": "true if networks are implemented at creation",
    "created": "when it was created",
}


def offering_view(session: Session, offering: NetworkOffering) -> dict:
    return compact({
        "id": offering.uuid, "name": offering.name, "displaytext": offering.display_text,
        "guestiptype": offering.guest_type, "traffictype": offering.traffic_type, "state": offering.state,
        "availability": offering.availability, "isdefault": offering.is_default,
        "specifyvlan": offering.specify_vlan, "specifyipranges": offering.specify_ip_ranges,
        "conservemode": offering.conserve_mode, "egressdefaultpolicy": offering.egress_default_policy,
        "networkrate": offering.network_rate, "tags": offering.tags, "forvpc": False,
        "ispersistent": offering.is_persistent, "supportsstrechedl2subnet": False, "supportspublicaccess": False,
        "service": service_list(offering.providers(), offering.details), "created": cs_date(offering.created),
        "domainid": _uuid(session, Domain, offering.domain_id),
        "serviceofferingid": _uuid(session, ServiceOffering, offering.service_offering_id),
        "internetprotocol": "IPv4",
    })


PHYSICAL_NETWORK_FIELDS = {
    "id": "the uuid of the physical network", "name": "the name", "zoneid": "the zone", "state": "Enabled or Disabled",
    "vlan": "the guest VLAN ranges", "isolationmethods": "the isolation methods",
    "broadcastdomainrange": "ZONE or POD", "networkspeed": "the speed", "tags": "the tags",
}


def physical_network_view(session: Session, physical: PhysicalNetwork) -> dict:
    return compact({
        "id": physical.uuid, "name": physical.name, "state": physical.state, "vlan": physical.vlan,
        "isolationmethods": physical.isolation_methods, "broadcastdomainrange": physical.broadcast_domain_range,
        "networkspeed": physical.network_speed, "tags": physical.tags,
        "domainid": _uuid(session, Domain, physical.domain_id),
        **_zone(session, physical.zone_id),
    })


TRAFFIC_TYPE_FIELDS = {"id": "the id", "traffictype": "the traffic type", "physicalnetworkid": "the physical network",
                       "kvmnetworklabel": "the KVM label", "xennetworklabel": "the Xen label",
                       "vmwarenetworklabel": "the VMware label", "hypervnetworklabel": "the Hyper-V label"}


def traffic_type_view(session: Session, traffic: PhysicalNetworkTrafficType) -> dict:
    return compact({
        "id": traffic.uuid, "traffictype": traffic.traffic_type,
        "physicalnetworkid": _uuid(session, PhysicalNetwork, traffic.physical_network_id),
        "kvmnetworklabel": traffic.kvm_label, "xennetworklabel": traffic.xen_label,
        "vmwarenetworklabel": traffic.vmware_label, "hypervnetworklabel": traffic.hyperv_label,
    })


PROVIDER_FIELDS = {"id": "the provider's id", "name": "the provider's name", "physicalnetworkid": "its physical network",
                   "state": "Enabled, Disabled or Shutdown", "servicelist": "the services it provides",
                   "canenableindividualservice": "true if services can be enabled one by one"}


def provider_view(session: Session, provider: NetworkServiceProvider) -> dict:
    return compact({
        "id": provider.uuid, "name": provider.provider_name, "state": provider.state,
        "physicalnetworkid": _uuid(session, PhysicalNetwork, provider.physical_network_id),
        "servicelist": [s for s in (provider.services or "").split(",") if s],
        "canenableindividualservice": True, "destinationphysicalnetworkid": "0",
    })


def router_element_view(session: Session, provider: NetworkServiceProvider) -> dict:
    """VirtualRouterProviderResponse: the router element of a VirtualRouter provider."""
    return compact({"id": provider.element_uuid, "nspid": provider.uuid, "enabled": provider.element_enabled,
                    **owner_fields(session, None, None)})


VLAN_RANGE_FIELDS = {
    "id": "the ID of the range", "forvirtualnetwork": "true for public addresses", "zoneid": "the zone",
    "vlan": "the VLAN", "gateway": "the gateway", "netmask": "the netmask", "startip": "the first address",
    "endip": "the last address", "networkid": "the (shared) network", "physicalnetworkid": "the physical network",
    "podid": "the pod", "cidr": "the CIDR", "forsystemvms": "true if for system VMs", **OWNER_FIELDS,
}


def vlan_range_view(session: Session, vlan_range: VlanIpRange) -> dict:
    from core.orchestration.networking import _cidr

    return compact({
        "id": vlan_range.uuid, "forvirtualnetwork": vlan_range.vlan_type == "VirtualNetwork",
        "vlan": f"vlan://{vlan_range.vlan_tag}" if vlan_range.vlan_tag not in (None, "untagged") else "vlan://untagged",
        "gateway": vlan_range.gateway, "netmask": vlan_range.netmask, "startip": vlan_range.start_ip,
        "endip": vlan_range.end_ip, "cidr": _cidr(vlan_range.gateway, vlan_range.netmask),
        "networkid": _uuid(session, Network, vlan_range.network_id),
        "physicalnetworkid": _uuid(session, PhysicalNetwork, vlan_range.physical_network_id),
        "podid": _uuid(session, Pod, vlan_range.pod_id), "forsystemvms": vlan_range.for_system_vms,
        "description": vlan_range.description,
        **_zone(session, vlan_range.zone_id),
        **owner_fields(session, vlan_range.account_id, vlan_range.domain_id),
    })


ADDRESS_FIELDS = {
    "id": "public IP address id", "ipaddress": "public IP address", "allocated": "when it was acquired",
    "zoneid": "the zone", "zonename": "the zone's name", "issourcenat": "true for the source NAT address",
    "isstaticnat": "true if static NAT is on", "virtualmachineid": "the static NAT VM", "vmipaddress": "its address",
    "associatednetworkid": "the network it is associated with", "networkid": "the network it comes from",
    "state": "Free, Allocating, Allocated or Releasing", "vlanid": "the IP range (root admins)",
    "forvirtualnetwork": "true", "issystem": "true if taken by the system", "physicalnetworkid": "the physical network",
    **OWNER_FIELDS,
}


def address_view(session: Session, address: PublicIpAddress, *, admin: bool = False) -> dict:
    network = session.get(Network, address.network_id) if address.network_id else None
    vm = session.get(VirtualMachine, address.vm_id) if address.vm_id else None
    data = {
        "id": address.uuid, "ipaddress": address.address, "allocated": cs_date(address.allocated),
        "issourcenat": address.is_source_nat, "isstaticnat": address.is_static_nat, "issystem": address.is_system,
        "forvirtualnetwork": True, "state": address.state, "isportable": False, "fordisplay": address.for_display,
        "associatednetworkid": network.uuid if network else None,
        "associatednetworkname": network.name if network else None,
        "networkid": network.uuid if network else None,
        "physicalnetworkid": _uuid(session, PhysicalNetwork, address.physical_network_id),
        "virtualmachineid": vm.uuid if vm else None, "virtualmachinename": vm.name if vm else None,
        "virtualmachinedisplayname": vm.display_name if vm else None, "vmipaddress": address.vm_ip,
        "vlanname": address.vlan.vlan_tag if address.vlan else None, "tags": [],
        **_zone(session, address.zone_id),
        **owner_fields(session, address.account_id, address.domain_id),
    }
    if admin:
        data["vlanid"] = address.vlan.uuid if address.vlan else None
    return compact(data)


ROUTER_FIELDS = {
    "id": "the id of the router", "name": "the name of the router", "state": "the state of the router",
    "zoneid": "the zone", "networkdomain": "the network domain", "guestipaddress": "the guest address",
    "guestmacaddress": "the guest MAC", "guestnetworkid": "the guest network", "guestnetworkname": "its name",
    "publicip": "the public (source NAT) address", "publicmacaddress": "the public MAC",
    "role": "VIRTUAL_ROUTER", "redundantstate": "the redundant state", "version": "the router's version",
    "requiresupgrade": "true if the router needs an upgrade", "hostname": "where it runs",
    "created": "when it was created", "nic": "its NICs", **OWNER_FIELDS,
}


def router_view(session: Session, router: Router) -> dict:
    network = session.get(Network, router.network_id)
    zone = session.get(Zone, router.zone_id)
    nics = [compact({"id": f"{router.uuid}-guest", "networkid": network.uuid, "networkname": network.name,
                     "ipaddress": router.guest_ip, "macaddress": router.guest_mac, "netmask": network.netmask,
                     "gateway": network.gateway, "traffictype": "Guest", "type": network.guest_type,
                     "isdefault": router.public_ip is None})]
    if router.public_ip:
        source = session.scalar(select(PublicIpAddress).where(PublicIpAddress.network_id == network.id,
                                                              PublicIpAddress.is_source_nat.is_(True)))
        nics.append(compact({"id": f"{router.uuid}-public", "ipaddress": router.public_ip,
                             "macaddress": router.public_mac, "traffictype": "Public", "isdefault": True,
                             "netmask": source.vlan.netmask if source else None,
                             "gateway": source.vlan.gateway if source else None}))
    return compact({
        "id": router.uuid, "name": router.name, "state": router.state, "role": "VIRTUAL_ROUTER",
        "networkdomain": network.network_domain, "guestipaddress": router.guest_ip,
        "guestmacaddress": router.guest_mac, "guestnetmask": network.netmask, "guestnetworkid": network.uuid,
        "guestnetworkname": network.name, "publicip": router.public_ip, "publicmacaddress": router.public_mac,
        "gateway": network.gateway, "dns1": network.dns1 or zone.dns1, "dns2": network.dns2 or zone.dns2,
        "redundantstate": "UNKNOWN", "isredundantrouter": False, "version": router.version,
        "requiresupgrade": False, "hostname": router.host_name, "created": cs_date(router.created),
        "healthchecksfailed": router.state == "Error", "lasterror": router.last_error, "nic": nics,
        "vpcid": None, "hypervisor": "None",
        **_zone(session, router.zone_id),
        **owner_fields(session, router.account_id, router.domain_id),
    })


def nics_in(session: Session, network: Network) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count()).select_from(Nic).join(VirtualMachine, VirtualMachine.id == Nic.vm_id)
                          .where(Nic.network_id == network.id, VirtualMachine.removed.is_(None)))

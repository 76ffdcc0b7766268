"""Network commands available in the foundation: listNetworks over the guest networks
the core makes, and the public-address lists that clients such as libcloud read
alongside listVirtualMachines. Public addresses and their rules come with the
virtual-router plugin; a zone without it has none, so those lists are empty."""

from __future__ import annotations

from sqlalchemy import or_, select

from core.commands import P, api_command
from core.model import Network, Zone

from ..views.common import compact, owner_fields

NETWORK_FIELDS = {"id": "the network ID", "name": "the network name", "displaytext": "the display text",
                  "zoneid": "the zone", "zonename": "the zone name", "type": "Shared, Isolated or L2",
                  "traffictype": "Guest", "cidr": "the CIDR", "gateway": "the gateway", "netmask": "the netmask",
                  "state": "the network state", "vlan": "the VLAN", "broadcasturi": "the broadcast URI"}


def network_view(session, network: Network) -> dict:
    zone = session.get(Zone, network.zone_id)
    return compact({
        "id": network.uuid, "name": network.name, "displaytext": network.display_text, "zoneid": zone.uuid,
        "zonename": zone.name, "type": network.guest_type, "traffictype": network.traffic_type,
        "cidr": network.cidr, "gateway": network.gateway, "netmask": network.netmask, "state": network.state,
        "vlan": network.vlan, "broadcasturi": f"vlan://{network.vlan}" if network.vlan else None,
        "acltype": "Domain" if network.account_id is None else "Account", "canusefordeploy": True,
        "isdefault": network.account_id is None, "service": [],
        **owner_fields(session, network.account_id, network.domain_id),
    })


@api_command("listNetworks", response="network", is_list=True, response_fields=NETWORK_FIELDS,
             description="Lists all available networks.",
             params={"id": P.uuid("the network"), "zoneid": P.uuid("the zone"), "type": P.string("the guest type"),
                     "traffictype": P.string("the traffic type"), "canusefordeploy": P.boolean("usable for deploy")})
def list_networks(ctx, p):
    # shared networks (no account) are visible to everyone, account networks by the ownership rules
    query = select(Network).where(Network.removed.is_(None),
                                  or_(Network.account_id.is_(None), ctx.owner_filter(Network, by_id="id" in p)))
    if "id" in p:
        query = query.where(Network.uuid == p["id"])
    if "zoneid" in p:
        query = query.where(Network.zone_id == ctx.get(Zone, p["zoneid"], "zoneid", check_owner=False).id)
    if "type" in p:
        query = query.where(Network.guest_type == p["type"].capitalize())
    if "traffictype" in p:
        query = query.where(Network.traffic_type == p["traffictype"].capitalize())
    total, networks = ctx.page(query, name_column=Network.name, order_by=Network.id)
    return total, [network_view(ctx.session, n) for n in networks]


def _no_public_addresses(ctx, p):
    """No zone has public addresses until the virtual-router plugin provides them."""
    return 0, []


_ADDRESS_PARAMS = {"id": P.uuid("the ID"), "ipaddressid": P.uuid("the public IP address"),
                   "virtualmachineid": P.uuid("the VM"), "zoneid": P.uuid("the zone"),
                   "associatednetworkid": P.uuid("the network")}

list_public_ip_addresses = api_command(
    "listPublicIpAddresses", response="publicipaddress", is_list=True, params=_ADDRESS_PARAMS,
    description="Lists all public IP addresses")(_no_public_addresses)
list_port_forwarding_rules = api_command(
    "listPortForwardingRules", response="portforwardingrule", is_list=True, params=_ADDRESS_PARAMS,
    description="Lists all port forwarding rules for an IP address.")(_no_public_addresses)
list_ip_forwarding_rules = api_command(
    "listIpForwardingRules", response="ipforwardingrule", is_list=True, params=_ADDRESS_PARAMS,
    description="List the IP forwarding (static NAT) rules")(_no_public_addresses)

"""Views of the rules on guest networks: port forwarding (FirewallRuleResponse), firewall and
egress rules (FirewallResponse), static NAT (IpForwardingRuleResponse), load balancers
(LoadBalancerResponse, LBStickinessResponse), remote-access VPN and its users
(RemoteAccessVpnResponse, VpnUsersResponse)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.model import Network, NetworkRule, PublicIpAddress, RemoteAccessVpn, VirtualMachine, VpnUser, Zone

from .common import OWNER_FIELDS, compact, owner_fields


PF_FIELDS = {
    "id": "the ID of the rule", "protocol": "tcp or udp", "publicport": "the first public port",
    "publicendport": "the last public port", "privateport": "the first private port",
    "privateendport": "the last private port", "virtualmachineid": "the VM", "virtualmachinename": "its name",
    "virtualmachinedisplayname": "its display name", "vmguestip": "the VM's guest address",
    "ipaddressid": "the public address", "ipaddress": "its address", "state": "Add, Active or Revoke",
    "cidrlist": "the source CIDRs", "networkid": "the network", **OWNER_FIELDS,
}


def pf_view(session: Session, rule: NetworkRule) -> dict:
    vm = session.get(VirtualMachine, rule.vm_id) if rule.vm_id else None
    address = rule.ip_address
    return compact({
        "id": rule.uuid, "protocol": rule.protocol, "publicport": str(rule.start_port),
        "publicendport": str(rule.end_port), "privateport": str(rule.dest_port_start),
        "privateendport": str(rule.dest_port_end), "virtualmachineid": vm.uuid if vm else None,
        "virtualmachinename": vm.name if vm else None, "virtualmachinedisplayname": vm.display_name if vm else None,
        "vmguestip": rule.dest_ip, "ipaddressid": address.uuid if address else None,
        "ipaddress": address.address if address else None, "state": rule.state,
        "cidrlist": ",".join(rule.source_cidrs or []), "networkid": session.get(Network, rule.network_id).uuid,
        "fordisplay": rule.for_display, "tags": [],
        **owner_fields(session, rule.account_id, rule.domain_id),
    })


FIREWALL_FIELDS = {
    "id": "the ID of the rule", "protocol": "tcp, udp, icmp or all", "startport": "the first port",
    "endport": "the last port", "ipaddressid": "the public address (ingress)", "ipaddress": "its address",
    "networkid": "the network", "state": "Add, Active or Revoke", "cidrlist": "the source CIDRs",
    "destcidrlist": "the destination CIDRs (egress)", "icmptype": "the ICMP type", "icmpcode": "the ICMP code",
    "traffictype": "Ingress or Egress",
}


def firewall_view(session: Session, rule: NetworkRule) -> dict:
    address = rule.ip_address
    return compact({
        "id": rule.uuid, "protocol": rule.protocol,
        "startport": rule.start_port, "endport": rule.end_port,
        "ipaddressid": address.uuid if address else None, "ipaddress": address.address if address else None,
        "networkid": session.get(Network, rule.network_id).uuid, "state": rule.state,
        "cidrlist": ",".join(rule.source_cidrs or []),
        "destcidrlist": ",".join(rule.dest_cidrs or []) if rule.traffic_type == "Egress" else None,
        "icmptype": rule.icmp_type, "icmpcode": rule.icmp_code, "traffictype": rule.traffic_type,
        "fordisplay": rule.for_display, "tags": [],
    })


STATIC_NAT_FIELDS = {
    "id": "the ID of the IP forwarding rule", "protocol": "tcp or udp", "ipaddressid": "the public address",
    "ipaddress": "its address", "startport": "the first port", "endport": "the last port",
    "virtualmachineid": "the VM (the address's static NAT)", "virtualmachinename": "its name",
    "virtualmachinedisplayname": "its display name", "vmguestip": "the VM's guest address",
    "state": "Add, Active or Revoke",
}


def static_nat_view(session: Session, rule: NetworkRule) -> dict:
    """An IP forwarding rule (CloudStack's IpForwardingRuleResponse): the ports of a static-NAT
    address it names, towards the address's VM."""
    address = rule.ip_address
    vm = session.get(VirtualMachine, address.vm_id) if address is not None and address.vm_id else None
    return compact({
        "id": rule.uuid, "protocol": rule.protocol, "ipaddressid": address.uuid if address else None,
        "ipaddress": address.address if address else None, "startport": rule.start_port, "endport": rule.end_port,
        "virtualmachineid": vm.uuid if vm else None, "virtualmachinename": vm.name if vm else None,
        "virtualmachinedisplayname": vm.display_name if vm else None,
        "vmguestip": address.vm_ip if address else None, "state": rule.state,
    })


LB_FIELDS = {
    "id": "the ID of the rule", "name": "its name", "description": "its description", "publicipid": "the public address",
    "publicip": "its address", "publicport": "the public port", "privateport": "the private port",
    "algorithm": "roundrobin, leastconn or source", "networkid": "the network", "cidrlist": "the source CIDRs",
    "state": "Add, Active or Revoke", "zoneid": "the zone", "protocol": "tcp", **OWNER_FIELDS,
}


def lb_view(session: Session, rule: NetworkRule) -> dict:
    address = rule.ip_address
    zone = session.get(Zone, address.zone_id) if address else None
    return compact({
        "id": rule.uuid, "name": rule.name, "description": rule.description,
        "publicipid": address.uuid if address else None, "publicip": address.address if address else None,
        "publicport": str(rule.start_port), "privateport": str(rule.dest_port_start), "algorithm": rule.algorithm,
        "networkid": session.get(Network, rule.network_id).uuid, "cidrlist": ",".join(rule.source_cidrs or []),
        "state": rule.state, "zoneid": zone.uuid if zone else None, "zonename": zone.name if zone else None,
        "protocol": rule.lb_protocol or "tcp", "fordisplay": rule.for_display, "tags": [],
        **owner_fields(session, rule.account_id, rule.domain_id),
    })


STICKINESS_FIELDS = {"lbruleid": "the load balancer rule", "name": "its name", "state": "the rule's state",
                     "stickinesspolicy": "the policies (id, name, methodname, params, state)", **OWNER_FIELDS}


def stickiness_view(session: Session, rule: NetworkRule) -> dict:
    policies = [compact({"id": s.uuid, "name": s.name, "methodname": s.method_name, "description": s.description,
                         "params": dict(s.params or {}), "state": s.state})
                for s in rule.stickiness if s.state != "Revoke"]
    zone = session.get(Zone, rule.ip_address.zone_id) if rule.ip_address else None
    return compact({"lbruleid": rule.uuid, "name": rule.name, "description": rule.description,
                    "state": rule.state, "zoneid": zone.uuid if zone else None, "stickinesspolicy": policies,
                    **owner_fields(session, rule.account_id, rule.domain_id)})


VPN_FIELDS = {
    "id": "the id of the VPN", "publicipid": "the public address", "publicip": "its address",
    "iprange": "the addresses handed to clients (the first is the server's)", "presharedkey": "the pre-shared key",
    "state": "Added, Running or Removed", "type": "the VPN's kind (OpenVPN)",
    "certificatefingerprint": "the SHA-256 fingerprint of the server's certificate (clients pin it)",
    **OWNER_FIELDS,
}


def vpn_view(session: Session, vpn: RemoteAccessVpn) -> dict:
    address = vpn.ip_address
    return compact({
        "id": vpn.uuid, "publicipid": address.uuid, "publicip": address.address, "iprange": vpn.ip_range,
        "presharedkey": vpn.pre_shared_key, "state": vpn.state, "type": "OpenVPN",
        "certificatefingerprint": (vpn.details or {}).get("fingerprint"), "fordisplay": vpn.for_display,
        "networkid": session.get(Network, vpn.network_id).uuid,
        **owner_fields(session, vpn.account_id, vpn.domain_id),
    })


VPN_USER_FIELDS = {"id": "the id of the VPN user", "username": "the username", "state": "Add, Active or Revoke",
                   **OWNER_FIELDS}


def vpn_user_view(session: Session, user: VpnUser) -> dict:
    return compact({"id": user.uuid, "username": user.username, "state": user.state,
                    **owner_fields(session, user.account_id, user.domain_id)})

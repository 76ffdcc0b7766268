"""Port forwarding (create, update, list, delete), IP forwarding (static NAT) rules, firewall
(ingress) and egress rules: create, list and delete each.

A create writes the rule (state Add) and, for port forwarding with openfirewall (the
default), the firewall rule that opens its ports, in the command's transaction; the job
puts them on the router and makes them Active — or deletes them again and fails with the
router's reason. A delete marks the rule Revoke; the job takes it off the router and drops
it. Rules on another account's address are refused (531); a port range that collides with
another rule is 537 naming that rule.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import select

from api.views.network_rules import (
    FIREWALL_FIELDS,
    PF_FIELDS,
    STATIC_NAT_FIELDS,
    firewall_view,
    pf_view,
    static_nat_view,
)
from core.commands import ALL_ROLES, P, api_command
from core.errors import InvalidParameterError, NetworkRuleConflictError, PermissionDenied
from core.jobs import job_handler
from core.model import Network, NetworkRule, PublicIpAddress, RuleState, VirtualMachine
from core.orchestration import networking

from .network_ips import owned_address, usable_network, vm_on_network
from .zones import invalid

PROTOCOLS = ("tcp", "udp", "icmp", "all")


# -- shared by the rule commands (and network_lb / network_vpn) -----------------------------------


def protocol_of(ctx, value: str, allowed=PROTOCOLS) -> str:
    text = value.strip().lower()
    if text not in allowed:
        raise invalid(ctx, "protocol", f"'{value}' is not one of {', '.join(allowed)}")
    return text


def port_range(ctx, start_param: str, end_param: str, p: dict, *, required: bool = True) -> tuple[int | None, int | None]:
    start, end = p.get(start_param), p.get(end_param)
    if start is None:
        if required:
            raise InvalidParameterError(f"Unable to execute API command {ctx.command.lower_name} due to missing "
                                        f"parameter {start_param}")
        if end is not None:
            raise invalid(ctx, start_param, f"{end_param} needs {start_param}")
        return None, None
    end = start if end is None else end
    for param, value in ((start_param, start), (end_param, end)):
        if not 1 <= value <= 65535:
            raise invalid(ctx, param, f"{value} is not a port (1-65535)")
    if end < start:
        raise invalid(ctx, end_param, f"{end} is below {start_param} {start}")
    return start, end


def cidr_list(ctx, param: str, values: list[str] | None, default: list[str], *, within: str | None = None) -> list[str]:
    cidrs = []
    for value in values or default:
        try:
            net = ipaddress.IPv4Network(value.strip(), strict=False)
        except ValueError:
            raise invalid(ctx, param, f"'{value}' is not an IPv4 CIDR") from None
        if within is not None and not net.subnet_of(ipaddress.IPv4Network(within)):
            raise invalid(ctx, param, f"{net} is not inside the network's CIDR {within}")
        cidrs.append(str(net))
    return sorted(set(cidrs))


def icmp_fields(ctx, p: dict, protocol: str) -> tuple[int | None, int | None]:
    if protocol != "icmp":
        if "icmptype" in p or "icmpcode" in p:
            raise invalid(ctx, "icmptype", "icmptype and icmpcode go with protocol icmp only")
        return None, None
    icmp_type, icmp_code = p.get("icmptype", -1), p.get("icmpcode", -1)
    if not -1 <= icmp_type <= 255 or not -1 <= icmp_code <= 255:
        raise invalid(ctx, "icmptype", "icmptype and icmpcode are -1 (any) or 0-255")
    return icmp_type, icmp_code


def _overlap(a_start, a_end, b_start, b_end) -> bool:
    if a_start is None or b_start is None:  # "every port"
        return True
    return a_start <= b_end and b_start <= a_end


def check_port_conflicts(session, address: PublicIpAddress, protocol: str, start: int, end: int,
                         *, ignore: int | None = None) -> None:
    """537 when a port-forwarding or load-balancer rule on ``address`` already takes one of
    the ports ``start``-``end`` of ``protocol``."""
    for rule in session.scalars(select(NetworkRule).where(
            NetworkRule.ip_address_id == address.id, NetworkRule.state != RuleState.REVOKE,
            NetworkRule.purpose.in_(("PortForwarding", "LoadBalancing")))):
        if rule.id == ignore:
            continue
        if rule.protocol == protocol and _overlap(start, end, rule.start_port, rule.end_port):
            kind = "port forwarding" if rule.purpose == "PortForwarding" else "load balancer"
            raise NetworkRuleConflictError(
                f"The range specified, {start}-{end}, conflicts with {kind} rule {rule.uuid} which has "
                f"{rule.start_port}-{rule.end_port} ({protocol}) on {address.address}")


def check_firewall_conflicts(session, network: Network, address: PublicIpAddress | None, *, traffic_type: str,
                             protocol: str, start, end, icmp_type, icmp_code, cidrs: list[str],
                             dest_cidrs: list[str]) -> None:
    """537 when a firewall (or egress) rule with the same protocol and CIDRs already covers
    an overlapping port range (CloudStack's duplicate-rule check)."""
    query = select(NetworkRule).where(NetworkRule.network_id == network.id, NetworkRule.purpose == "Firewall",
                                      NetworkRule.traffic_type == traffic_type, NetworkRule.state != RuleState.REVOKE)
    if address is not None:
        query = query.where(NetworkRule.ip_address_id == address.id)
    for rule in session.scalars(query):
        if rule.protocol != protocol or sorted(rule.source_cidrs or []) != cidrs:
            continue
        if traffic_type == "Egress" and sorted(rule.dest_cidrs or []) != dest_cidrs:
            continue
        if protocol == "icmp":
            clash = rule.icmp_type in (-1, icmp_type) or icmp_type == -1
        else:
            clash = _overlap(start, end, rule.start_port, rule.end_port)
        if clash:
            where = f"on {address.address}" if address is not None else f"of network {network.name}"
            ports = f"{rule.start_port}-{rule.end_port}" if rule.start_port is not None else "all ports"
            raise NetworkRuleConflictError(
                f"The firewall rule conflicts with rule {rule.uuid} {where}: {protocol} {ports} from "
                f"{','.join(cidrs)}")


CHANGE_KINDS = ("added", "revoked", "members_added", "members_revoked", "users_added", "users_revoked",
                "policies_added", "policies_revoked", "vpns_added", "vpns_revoked")


def start_rules_job(ctx, network: Network, *, render: dict, instance=None, **changes):
    """Queue the job that puts the rows this command wrote on the router (``changes``: the
    keyword arguments of ``networking.apply_rules``) and answers ``render``."""
    unknown = set(changes) - set(CHANGE_KINDS)
    if unknown:
        raise TypeError(f"unknown rule changes {sorted(unknown)}")
    return ctx.start_job("network.rules", {"network": network.uuid, "render": render,
                                           **{kind: list(changes.get(kind, ())) for kind in CHANGE_KINDS}},
                         instance=instance if instance is not None else network,
                         instance_type=type(instance).__name__ if instance is not None else "Network")


@job_handler("network.rules")
def rules_job(ctx):
    params = ctx.params
    networking.apply_rules(ctx.cloud, params["network"], caller=ctx.caller,
                           **{kind: params.get(kind, ()) for kind in CHANGE_KINDS})
    return render(ctx, params["render"])


def render(ctx, what: dict) -> dict:
    """The job result ``what`` names: {"kind": "pf"|"firewall"|"lb"|"vpn"|"vpnuser"|"success", "id": uuid}."""
    if what["kind"] == "success":
        return {"success": True}
    from api.views.network_rules import lb_view, stickiness_view, vpn_user_view, vpn_view
    from core.model import RemoteAccessVpn, VpnUser

    with ctx.transaction() as session:
        if what["kind"] in ("pf", "firewall", "lb", "stickiness", "ipforwarding"):
            rule = session.scalar(select(NetworkRule).where(NetworkRule.uuid == what["id"]))
            view = {"pf": ("portforwardingrule", pf_view), "firewall": ("firewallrule", firewall_view),
                    "lb": ("loadbalancer", lb_view), "stickiness": ("stickinesspolicies", stickiness_view),
                    "ipforwarding": ("ipforwardingrule", static_nat_view)}
            key, fn = view[what["kind"]]
            return {key: fn(session, rule)}
        if what["kind"] == "vpn":
            vpn = session.scalar(select(RemoteAccessVpn).where(RemoteAccessVpn.uuid == what["id"]))
            return {"remoteaccessvpn": vpn_view(session, vpn)}
        user = session.scalar(select(VpnUser).where(VpnUser.uuid == what["id"]))
        return {"vpnuser": vpn_user_view(session, user)}


def owned_rule(ctx, uuid: str, purpose: str, traffic_type: str | None = None) -> NetworkRule:
    rule = ctx.get(NetworkRule, uuid, "id")
    if rule.purpose != purpose or (traffic_type and rule.traffic_type != traffic_type):
        raise InvalidParameterError(f"rule {uuid} is not a {purpose.lower()} rule"
                                    + (f" ({traffic_type.lower()})" if traffic_type else ""))
    if rule.state == RuleState.REVOKE:
        raise InvalidParameterError(f"rule {uuid} is already being removed")
    return rule


def rule_network(ctx, address: PublicIpAddress, service: str) -> Network:
    if address.network_id is None:
        raise InvalidParameterError(f"IP {address.address} is not associated with a network")
    network = usable_network(ctx, ctx.session.get(Network, address.network_id))
    if service not in networking.services_of(ctx.session, network):
        raise InvalidParameterError(f"network {network.name}'s offering has no {service} service")
    return network


# -- port forwarding -------------------------------------------------------------------------------


@api_command("createPortForwardingRule", response="portforwardingrule", is_async=True, roles=ALL_ROLES,
             response_fields=PF_FIELDS, description="Creates a port forwarding rule", params={
                 "ipaddressid": P.uuid("the IP address id of the port forwarding rule", required=True),
                 "privateport": P.integer("the starting port of port forwarding rule's private port range",
                                          required=True),
                 "privateendport": P.integer("the ending port of port forwarding rule's private port range"),
                 "protocol": P.string("the protocol for the port forwarding rule: TCP or UDP", required=True),
                 "publicport": P.integer("the starting port of port forwarding rule's public port range",
                                         required=True),
                 "publicendport": P.integer("the ending port of port forwarding rule's private port range"),
                 "virtualmachineid": P.uuid("the ID of the virtual machine for the port forwarding rule",
                                            required=True),
                 "cidrlist": P.list("the cidr list to forward traffic from (with openfirewall)"),
                 "openfirewall": P.boolean("if true (the default), a firewall rule for the public ports is "
                                           "made with the rule"),
                 "networkid": P.uuid("the network of the virtual machine the rule will be created for"),
                 "vmguestip": P.string("VM guest nic secondary IP address for the port forwarding rule",
                                       max_length=64),
                 "fordisplay": P.boolean("an optional field, whether to the display the rule to the end user"),
             })
def create_port_forwarding_rule(ctx, p):
    address = owned_address(ctx, p["ipaddressid"])
    network = rule_network(ctx, address, "PortForwarding")
    if "networkid" in p and ctx.get(Network, p["networkid"], "networkid").id != network.id:
        raise invalid(ctx, "networkid", f"IP {address.address} belongs to another network")
    if address.is_static_nat:
        raise NetworkRuleConflictError(f"IP {address.address} has static NAT; port forwarding cannot be added to it")
    protocol = protocol_of(ctx, p["protocol"], ("tcp", "udp"))
    public_start, public_end = port_range(ctx, "publicport", "publicendport", p)
    private_start, private_end = port_range(ctx, "privateport", "privateendport", p)
    if public_end - public_start != private_end - private_start:
        raise invalid(ctx, "privateendport", f"the private range {private_start}-{private_end} and the public range "
                                             f"{public_start}-{public_end} must be as long")
    vm, nic = vm_on_network(ctx, p["virtualmachineid"], network, guest_ip=p.get("vmguestip"))
    check_port_conflicts(ctx.session, address, protocol, public_start, public_end)
    cidrs = cidr_list(ctx, "cidrlist", p.get("cidrlist"), ["0.0.0.0/0"])
    rule = NetworkRule(network_id=network.id, ip_address_id=address.id, account_id=address.account_id,
                       domain_id=address.domain_id, purpose="PortForwarding", protocol=protocol,
                       start_port=public_start, end_port=public_end, source_cidrs=cidrs, vm_id=vm.id,
                       dest_ip=nic.ip_address, dest_port_start=private_start, dest_port_end=private_end,
                       for_display=p.get("fordisplay", True))
    ctx.session.add(rule)
    ctx.session.flush()
    added = [rule.uuid]
    if p.get("openfirewall", True):
        added.append(_open_firewall(ctx, network, address, rule, protocol, public_start, public_end, cidrs).uuid)
    ctx.event("NET.RULEADD", f"Added port forwarding {address.address}:{public_start}-{public_end} to VM {vm.name}",
              rule)
    return start_rules_job(ctx, network, render={"kind": "pf", "id": rule.uuid}, added=added, instance=rule)


def _open_firewall(ctx, network, address, rule, protocol, start, end, cidrs) -> NetworkRule:
    """The firewall rule a port-forwarding or load-balancer rule opens for itself (unless an
    identical one is there: CloudStack reuses it)."""
    firewall = NetworkRule(network_id=network.id, ip_address_id=address.id, account_id=address.account_id,
                           domain_id=address.domain_id, purpose="Firewall", traffic_type="Ingress",
                           protocol=protocol, start_port=start, end_port=end, source_cidrs=cidrs,
                           related_id=rule.id)
    ctx.session.add(firewall)
    ctx.session.flush()
    return firewall


@api_command("deletePortForwardingRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes a port forwarding rule",
             params={"id": P.uuid("the ID of the port forwarding rule", required=True)})
def delete_port_forwarding_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "PortForwarding")
    return revoke_rule(ctx, rule, "NET.RULEDELETE", f"Deleting port forwarding rule {rule.uuid}")


@api_command("updatePortForwardingRule", response="portforwardingrule", is_async=True, roles=ALL_ROLES,
             response_fields=PF_FIELDS, description="Updates a port forwarding rule. Only the private port and the "
                                                    "virtual machine can be updated.", params={
                 "id": P.uuid("the ID of the port forwarding rule", required=True),
                 "privateport": P.integer("the private start port of the port forwarding rule"),
                 "privateendport": P.integer("the private end port of the port forwarding rule"),
                 "virtualmachineid": P.uuid("the ID of the virtual machine for the port forwarding rule"),
                 "vmguestip": P.string("VM guest nic Secondary ip address for the port forwarding rule",
                                       max_length=64),
                 "fordisplay": P.boolean("an optional field, whether to the display the rule to the end user or not"),
                 # CloudStack's custom id must be a uuid: it becomes the rule's id, which every command takes
                 "customid": P.uuid("an optional field, in case you want to set a custom id to the resource. "
                                    "Allowed to Root Admins only"),
             })
def update_port_forwarding_rule(ctx, p):
    """Changes where a rule forwards to, in place (same id); the router follows in the job, and
    a change the router refuses is undone."""
    rule = owned_rule(ctx, p["id"], "PortForwarding")
    network = ctx.session.get(Network, rule.network_id)
    previous = {"vm_id": rule.vm_id, "dest_ip": rule.dest_ip, "dest_port_start": rule.dest_port_start,
                "dest_port_end": rule.dest_port_end, "for_display": rule.for_display, "uuid": rule.uuid}
    if "privateport" in p or "privateendport" in p:
        start, end = port_range(ctx, "privateport", "privateendport",
                                {"privateport": p.get("privateport", rule.dest_port_start),
                                 "privateendport": p.get("privateendport", p.get("privateport"))})
        if end - start != rule.end_port - rule.start_port:
            raise invalid(ctx, "privateendport", f"the private range {start}-{end} and the public range "
                                                 f"{rule.start_port}-{rule.end_port} must be as long")
        rule.dest_port_start, rule.dest_port_end = start, end
    if "virtualmachineid" in p or "vmguestip" in p:
        vm_uuid = p.get("virtualmachineid") or ctx.session.get(VirtualMachine, rule.vm_id).uuid
        vm, nic = vm_on_network(ctx, vm_uuid, network, guest_ip=p.get("vmguestip"))
        rule.vm_id, rule.dest_ip = vm.id, nic.ip_address
    if "fordisplay" in p:
        rule.for_display = p["fordisplay"]
    if "customid" in p:
        if not ctx.caller.is_root_admin:
            raise PermissionDenied("customid may be given by root admins only")
        if ctx.session.scalar(select(NetworkRule.id).where(NetworkRule.uuid == p["customid"],
                                                           NetworkRule.id != rule.id)):
            raise invalid(ctx, "customid", f"{p['customid']} is the id of another rule")
        rule.uuid = p["customid"]
    ctx.session.flush()
    ctx.event("NET.RULEMODIFY", f"Updated port forwarding rule {rule.uuid}", rule)
    return ctx.start_job("network.rule.update", {"network": network.uuid, "rule": rule.uuid, "previous": previous},
                         instance=rule, instance_type="NetworkRule")


@job_handler("network.rule.update")
def rule_update_job(ctx):
    networking.apply_rule_update(ctx.cloud, ctx.params["network"], ctx.params["rule"], ctx.params["previous"],
                                 caller=ctx.caller)
    return render(ctx, {"kind": "pf", "id": ctx.params["rule"]})


# -- IP forwarding (static NAT) rules ------------------------------------------------------------------


@api_command("createIpForwardingRule", response="ipforwardingrule", is_async=True, roles=ALL_ROLES,
             response_fields=STATIC_NAT_FIELDS, description="Creates an IP forwarding rule", params={
                 "ipaddressid": P.uuid("the public IP address ID of the forwarding rule, already associated via "
                                       "associateIp", required=True),
                 "protocol": P.string("the protocol for the rule. Valid values are TCP or UDP.", required=True),
                 "startport": P.integer("the start port for the rule", required=True),
                 "endport": P.integer("the end port for the rule"),
                 "openfirewall": P.boolean("if true (the default), a firewall rule for the ports is made with it"),
                 "cidrlist": P.list("deprecated: give the CIDRs in createFirewallRule"),
             })
def create_ip_forwarding_rule(ctx, p):
    """A static NAT rule on an address with static NAT: the ports it names (with openfirewall,
    the default, opened by a firewall rule that goes with it) reach the address's VM."""
    if "cidrlist" in p:
        raise invalid(ctx, "cidrlist", "cidrlist is deprecated; open the ports for chosen CIDRs with "
                                       "createFirewallRule")
    address = owned_address(ctx, p["ipaddressid"])
    if not address.is_static_nat or address.vm_id is None:
        raise InvalidParameterError(f"IP {address.address} has no static NAT: enableStaticNat first")
    network = rule_network(ctx, address, "StaticNat")
    protocol = protocol_of(ctx, p["protocol"], ("tcp", "udp"))
    start, end = port_range(ctx, "startport", "endport", p)
    for other in ctx.session.scalars(select(NetworkRule).where(
            NetworkRule.ip_address_id == address.id, NetworkRule.purpose == "StaticNat",
            NetworkRule.state != RuleState.REVOKE, NetworkRule.protocol == protocol)):
        if _overlap(start, end, other.start_port, other.end_port):
            raise NetworkRuleConflictError(f"The range specified, {start}-{end}, conflicts with IP forwarding rule "
                                           f"{other.uuid} which has {other.start_port}-{other.end_port} ({protocol}) "
                                           f"on {address.address}")
    rule = NetworkRule(network_id=network.id, ip_address_id=address.id, account_id=address.account_id,
                       domain_id=address.domain_id, purpose="StaticNat", protocol=protocol, start_port=start,
                       end_port=end, source_cidrs=["0.0.0.0/0"], vm_id=address.vm_id, dest_ip=address.vm_ip)
    ctx.session.add(rule)
    ctx.session.flush()
    added = [rule.uuid]
    if p.get("openfirewall", True):
        added.append(_open_firewall(ctx, network, address, rule, protocol, start, end, ["0.0.0.0/0"]).uuid)
    ctx.event("NET.RULEADD", f"Applying an IP forwarding 1:1 NAT rule for IP: {address.address} ({protocol} "
                             f"{start}-{end})", rule)
    return start_rules_job(ctx, network, render={"kind": "ipforwarding", "id": rule.uuid}, added=added,
                           instance=rule)


@api_command("deleteIpForwardingRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes an IP forwarding rule",
             params={"id": P.uuid("the ID of the forwarding rule", required=True)})
def delete_ip_forwarding_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "StaticNat")
    return revoke_rule(ctx, rule, "NET.RULEDELETE", f"Deleting IP forwarding rule {rule.uuid}")


@api_command("listIpForwardingRules", response="ipforwardingrule", is_list=True, roles=ALL_ROLES,
             response_fields=STATIC_NAT_FIELDS, description="List the IP forwarding rules", params={
                 "id": P.uuid("Lists rule with the specified ID"),
                 "ipaddressid": P.uuid("list the rule belonging to this public IP address"),
                 "virtualmachineid": P.uuid("Lists all rules applied to the specified VM."),
             })
def list_ip_forwarding_rules(ctx, p):
    vm_id = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid").id if "virtualmachineid" in p else None
    return _list_rules(ctx, p, "StaticNat", None, static_nat_view, vm_id=vm_id)


@api_command("listPortForwardingRules", response="portforwardingrule", is_list=True, roles=ALL_ROLES,
             response_fields=PF_FIELDS, description="Lists all port forwarding rules for an IP address.", params={
                 "id": P.uuid("Lists rule with the specified ID."),
                 "ipaddressid": P.uuid("the ID of IP address of the port forwarding services"),
                 "networkid": P.uuid("list port forwarding rules for certain network"),
                 "fordisplay": P.boolean("list resources by display flag"),
             })
def list_port_forwarding_rules(ctx, p):
    return _list_rules(ctx, p, "PortForwarding", None, pf_view)


def _list_rules(ctx, p, purpose: str, traffic_type: str | None, view, *, vm_id: int | None = None):
    query = select(NetworkRule).where(NetworkRule.purpose == purpose,
                                      ctx.owner_filter(NetworkRule, by_id="id" in p or "ipaddressid" in p))
    if traffic_type is not None:
        query = query.where(NetworkRule.traffic_type == traffic_type)
    if "id" in p:
        query = query.where(NetworkRule.uuid == p["id"])
    if "ipaddressid" in p:
        address = ctx.get(PublicIpAddress, p["ipaddressid"], "ipaddressid", check_owner=False)
        query = query.where(NetworkRule.ip_address_id == address.id)
    if vm_id is not None:
        query = query.where(NetworkRule.vm_id == vm_id)
    if "networkid" in p:
        query = query.where(NetworkRule.network_id == ctx.get(Network, p["networkid"], "networkid",
                                                              check_owner=False).id)
    if "fordisplay" in p:
        query = query.where(NetworkRule.for_display.is_(p["fordisplay"]))
    total, rows = ctx.page(query, name_column=NetworkRule.name if purpose == "LoadBalancing" else None,
                           order_by=NetworkRule.id)
    return total, [view(ctx.session, r) for r in rows]


# -- firewall (ingress) ------------------------------------------------------------------------------

_FIREWALL_PARAMS = {
    "protocol": P.string("the protocol for the firewall rule. Valid values are TCP/UDP/ICMP/ALL", required=True),
    "startport": P.integer("the starting port of firewall rule"),
    "endport": P.integer("the ending port of firewall rule"),
    "cidrlist": P.list("the CIDR list to forward traffic from"),
    "icmptype": P.integer("type of the ICMP message being sent (-1: any)"),
    "icmpcode": P.integer("error code for this ICMP message (-1: any)"),
    "type": P.string("type of firewall rule: system/user"),
    "fordisplay": P.boolean("an optional field, whether to the display the rule to the end user or not"),
}


@api_command("createFirewallRule", response="firewallrule", is_async=True, roles=ALL_ROLES,
             response_fields=FIREWALL_FIELDS, description="Creates a firewall rule for a given IP address",
             params={"ipaddressid": P.uuid("the IP address id of the firewall rule", required=True),
                     **_FIREWALL_PARAMS})
def create_firewall_rule(ctx, p):
    address = owned_address(ctx, p["ipaddressid"])
    network = rule_network(ctx, address, "Firewall")
    protocol = protocol_of(ctx, p["protocol"])
    start, end = port_range(ctx, "startport", "endport", p, required=False) if protocol in ("tcp", "udp") \
        else _no_ports(ctx, p)
    icmp_type, icmp_code = icmp_fields(ctx, p, protocol)
    cidrs = cidr_list(ctx, "cidrlist", p.get("cidrlist"), ["0.0.0.0/0"])
    check_firewall_conflicts(ctx.session, network, address, traffic_type="Ingress", protocol=protocol, start=start,
                             end=end, icmp_type=icmp_type, icmp_code=icmp_code, cidrs=cidrs, dest_cidrs=[])
    rule = NetworkRule(network_id=network.id, ip_address_id=address.id, account_id=address.account_id,
                       domain_id=address.domain_id, purpose="Firewall", traffic_type="Ingress", protocol=protocol,
                       start_port=start, end_port=end, icmp_type=icmp_type, icmp_code=icmp_code,
                       source_cidrs=cidrs, for_display=p.get("fordisplay", True))
    ctx.session.add(rule)
    ctx.session.flush()
    ctx.event("FIREWALL.OPEN", f"Opened {protocol} {start}-{end} on {address.address}", rule)
    return start_rules_job(ctx, network, render={"kind": "firewall", "id": rule.uuid}, added=[rule.uuid],
                           instance=rule)


def _no_ports(ctx, p) -> tuple[None, None]:
    if "startport" in p or "endport" in p:
        raise invalid(ctx, "startport", "ports go with protocol tcp or udp only")
    return None, None


def revoke_rule(ctx, rule: NetworkRule, event_type: str, description: str):
    """Mark a rule for removal, with the rules made for it (the firewall rule of an
    ``openfirewall``), and queue the router update that takes them out."""
    rules = [rule, *ctx.session.scalars(select(NetworkRule).where(NetworkRule.related_id == rule.id))]
    for item in rules:
        item.state = RuleState.REVOKE
    ctx.event(event_type, description, rule)
    return start_rules_job(ctx, ctx.session.get(Network, rule.network_id), render={"kind": "success"},
                           revoked=[item.uuid for item in rules], instance=rule)


@api_command("deleteFirewallRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes a firewall rule", params={"id": P.uuid("the ID of the firewall rule", required=True)})
def delete_firewall_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "Firewall", "Ingress")
    return revoke_rule(ctx, rule, "FIREWALL.CLOSE", f"Deleting firewall rule {rule.uuid}")


@api_command("listFirewallRules", response="firewallrule", is_list=True, roles=ALL_ROLES,
             response_fields=FIREWALL_FIELDS, description="Lists all firewall rules for an IP address.", params={
                 "id": P.uuid("Lists rule with the specified ID."),
                 "ipaddressid": P.uuid("the ID of IP address of the firewall services"),
                 "networkid": P.uuid("list firewall rules for certain network"),
                 "fordisplay": P.boolean("list resources by display flag"),
             })
def list_firewall_rules(ctx, p):
    return _list_rules(ctx, p, "Firewall", "Ingress", firewall_view)


# -- egress ----------------------------------------------------------------------------------------------


@api_command("createEgressFirewallRule", response="firewallrule", is_async=True, roles=ALL_ROLES,
             response_fields=FIREWALL_FIELDS,
             description="Creates an egress firewall rule for a given network: with the offering's default "
                         "egress policy allow it blocks what it names, with deny it allows it",
             params={"networkid": P.uuid("the network id of the port forwarding rule", required=True),
                     "destcidrlist": P.list("the cidr list to send traffic to (default everywhere)"),
                     **_FIREWALL_PARAMS,
                     "cidrlist": P.list("the cidr list of guests the rule is for (default the network's CIDR)")})
def create_egress_firewall_rule(ctx, p):
    network = usable_network(ctx, ctx.get(Network, p["networkid"], "networkid"))
    if "Firewall" not in networking.services_of(ctx.session, network):
        raise InvalidParameterError(f"network {network.name}'s offering has no Firewall service")
    protocol = protocol_of(ctx, p["protocol"])
    start, end = port_range(ctx, "startport", "endport", p, required=False) if protocol in ("tcp", "udp") \
        else _no_ports(ctx, p)
    icmp_type, icmp_code = icmp_fields(ctx, p, protocol)
    cidrs = cidr_list(ctx, "cidrlist", p.get("cidrlist"), [network.cidr], within=network.cidr)
    dest = cidr_list(ctx, "destcidrlist", p.get("destcidrlist"), ["0.0.0.0/0"])
    check_firewall_conflicts(ctx.session, network, None, traffic_type="Egress", protocol=protocol, start=start,
                             end=end, icmp_type=icmp_type, icmp_code=icmp_code, cidrs=cidrs, dest_cidrs=dest)
    owner_id = network.account_id
    rule = NetworkRule(network_id=network.id, account_id=owner_id, domain_id=network.domain_id, purpose="Firewall",
                       traffic_type="Egress", protocol=protocol, start_port=start, end_port=end, icmp_type=icmp_type,
                       icmp_code=icmp_code, source_cidrs=cidrs, dest_cidrs=dest, for_display=p.get("fordisplay", True))
    ctx.session.add(rule)
    ctx.session.flush()
    ctx.event("FIREWALL.EGRESS.OPEN", f"Added egress rule {protocol} {start}-{end} to network {network.name}", rule)
    return start_rules_job(ctx, network, render={"kind": "firewall", "id": rule.uuid}, added=[rule.uuid],
                           instance=rule)


@api_command("deleteEgressFirewallRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes an egress firewall rule",
             params={"id": P.uuid("the ID of the firewall rule", required=True)})
def delete_egress_firewall_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "Firewall", "Egress")
    return revoke_rule(ctx, rule, "FIREWALL.EGRESS.CLOSE", f"Deleting egress rule {rule.uuid}")


@api_command("listEgressFirewallRules", response="firewallrule", is_list=True, roles=ALL_ROLES,
             response_fields=FIREWALL_FIELDS, description="Lists all egress firewall rules for network ID.", params={
                 "id": P.uuid("Lists rule with the specified ID."),
                 "networkid": P.uuid("the network ID for the egress firewall services"),
                 "fordisplay": P.boolean("list resources by display flag"),
             })
def list_egress_firewall_rules(ctx, p):
    return _list_rules(ctx, p, "Firewall", "Egress", firewall_view)

"""Load balancing on a public address: createLoadBalancerRule, listLoadBalancerRules,
updateLoadBalancerRule, deleteLoadBalancerRule, assignToLoadBalancerRule,
removeFromLoadBalancerRule, listLoadBalancerRuleInstances, createLBStickinessPolicy,
deleteLBStickinessPolicy, listLBStickinessPolicies.

Same life as the other rules (``network_rules``): written Add/Revoke by the command,
settled by the job once haproxy in the router has the change.
"""

from __future__ import annotations

from sqlalchemy import select

from api.views.compute import VM_FIELDS, vm_view
from api.views.network_rules import LB_FIELDS, STICKINESS_FIELDS, lb_view, stickiness_view
from core.commands import ALL_ROLES, P, api_command
from core.errors import InvalidParameterError
from core.model import LoadBalancerMember, Network, NetworkRule, RuleState, StickinessPolicy, VirtualMachine

from .network_ips import owned_address, vm_on_network
from .network_rules import (
    _list_rules,
    _open_firewall,
    check_port_conflicts,
    cidr_list,
    owned_rule,
    port_range,
    revoke_rule,
    rule_network,
    start_rules_job,
)
from .zones import choice, invalid

ALGORITHMS = ("roundrobin", "leastconn", "source")
STICKINESS_METHODS = ("LbCookie", "AppCookie", "SourceBased")


@api_command("createLoadBalancerRule", response="loadbalancer", is_async=True, roles=ALL_ROLES,
             response_fields=LB_FIELDS, description="Creates a load balancer rule", params={
                 "name": P.string("name of the load balancer rule", required=True),
                 "description": P.string("the description of the load balancer rule", max_length=4096),
                 "algorithm": P.string("load balancer algorithm (source, roundrobin, leastconn)", required=True),
                 "privateport": P.integer("the private port of the private IP address/virtual machine where the "
                                          "network traffic will be load balanced to", required=True),
                 "publicport": P.integer("the public port from where the network traffic will be load balanced "
                                         "from", required=True),
                 "publicipid": P.uuid("public IP address ID from where the network traffic will be load "
                                      "balanced from", required=True),
                 "networkid": P.uuid("The guest network this rule will be created for"),
                 "zoneid": P.uuid("zone where the load balancer is going to be created"),
                 "openfirewall": P.boolean("if true (the default), a firewall rule for the public port is made"),
                 "cidrlist": P.list("the CIDR list to allow traffic, all other CIDRs will be blocked"),
                 "protocol": P.string("The protocol for the LB: tcp (the default)"),
                 "account": P.string("the account associated with the load balancer"),
                 "domainid": P.uuid("the domain ID associated with the load balancer"),
                 "fordisplay": P.boolean("an optional field, whether to the display the rule to the end user"),
             })
def create_load_balancer_rule(ctx, p):
    address = owned_address(ctx, p["publicipid"], "publicipid")
    network = rule_network(ctx, address, "Lb")
    if "networkid" in p and ctx.get(Network, p["networkid"], "networkid").id != network.id:
        raise invalid(ctx, "networkid", f"IP {address.address} belongs to another network")
    if address.is_static_nat:
        raise InvalidParameterError(f"IP {address.address} has static NAT; load balancing cannot be added to it")
    algorithm = choice(ctx, "algorithm", p["algorithm"], ALGORITHMS)
    if p.get("protocol", "tcp").lower() != "tcp":
        raise invalid(ctx, "protocol", "the virtual router balances tcp only")
    public, _ = port_range(ctx, "publicport", "publicport", p)
    private, _ = port_range(ctx, "privateport", "privateport", p)
    check_port_conflicts(ctx.session, address, "tcp", public, public)
    cidrs = cidr_list(ctx, "cidrlist", p.get("cidrlist"), ["0.0.0.0/0"])
    rule = NetworkRule(network_id=network.id, ip_address_id=address.id, account_id=address.account_id,
                       domain_id=address.domain_id, purpose="LoadBalancing", protocol="tcp", start_port=public,
                       end_port=public, dest_port_start=private, dest_port_end=private, source_cidrs=cidrs,
                       name=p["name"].strip(), description=p.get("description"), algorithm=algorithm,
                       lb_protocol="tcp", for_display=p.get("fordisplay", True))
    ctx.session.add(rule)
    ctx.session.flush()
    added = [rule.uuid]
    if p.get("openfirewall", True):
        added.append(_open_firewall(ctx, network, address, rule, "tcp", public, public, cidrs).uuid)
    ctx.event("LB.CREATE", f"Created load balancer {rule.name} on {address.address}:{public}", rule)
    return start_rules_job(ctx, network, render={"kind": "lb", "id": rule.uuid}, added=added, instance=rule)


@api_command("listLoadBalancerRules", response="loadbalancerrule", is_list=True, roles=ALL_ROLES,
             response_fields=LB_FIELDS, description="Lists load balancer rules.", params={
                 "id": P.uuid("the ID of the load balancer rule"), "name": P.string("the name of the rule"),
                 "publicipid": P.uuid("the public IP address ID of the load balancer rule"),
                 "networkid": P.uuid("list by network ID the rule belongs to"),
                 "virtualmachineid": P.uuid("the ID of the virtual machine of the load balancer rule"),
                 "zoneid": P.uuid("the availability zone ID"), "fordisplay": P.boolean("list by display flag"),
             })
def list_load_balancer_rules(ctx, p):
    params = dict(p)
    if "publicipid" in params:
        params["ipaddressid"] = params.pop("publicipid")
    total, rows = _list_rules(ctx, params, "LoadBalancing", None, lb_view)
    if "name" in p:
        rows = [r for r in rows if r["name"] == p["name"]]
        total = len(rows)
    if "virtualmachineid" in p:
        vm = ctx.get(VirtualMachine, p["virtualmachineid"], "virtualmachineid")
        members = set(ctx.session.scalars(select(NetworkRule.uuid).join(
            LoadBalancerMember, LoadBalancerMember.rule_id == NetworkRule.id).where(LoadBalancerMember.vm_id == vm.id)))
        rows = [r for r in rows if r["id"] in members]
        total = len(rows)
    return total, rows


@api_command("updateLoadBalancerRule", response="loadbalancer", is_async=True, roles=ALL_ROLES,
             response_fields=LB_FIELDS, description="Updates load balancer", params={
                 "id": P.uuid("the ID of the load balancer rule to update", required=True),
                 "name": P.string("the name of the load balancer rule"),
                 "description": P.string("the description of the load balancer rule", max_length=4096),
                 "algorithm": P.string("load balancer algorithm (source, roundrobin, leastconn)"),
                 "fordisplay": P.boolean("an optional field, whether to the display the rule to the end user"),
             })
def update_load_balancer_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "LoadBalancing")
    if "name" in p:
        rule.name = p["name"].strip()
    if "description" in p:
        rule.description = p["description"]
    if "algorithm" in p:
        rule.algorithm = choice(ctx, "algorithm", p["algorithm"], ALGORITHMS)
    if "fordisplay" in p:
        rule.for_display = p["fordisplay"]
    ctx.event("LB.UPDATE", f"Updated load balancer {rule.name}", rule)
    return start_rules_job(ctx, ctx.session.get(Network, rule.network_id), render={"kind": "lb", "id": rule.uuid},
                           instance=rule)


@api_command("deleteLoadBalancerRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes a load balancer rule.",
             params={"id": P.uuid("the ID of the load balancer rule", required=True)})
def delete_load_balancer_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "LoadBalancing")
    return revoke_rule(ctx, rule, "LB.DELETE", f"Deleting load balancer {rule.name}")


def _members(ctx, p, rule: NetworkRule) -> list[tuple[VirtualMachine, str]]:
    """(VM, guest address) pairs from virtualmachineids and/or vmidipmap."""
    network = ctx.session.get(Network, rule.network_id)
    wanted: list[tuple[VirtualMachine, str]] = []
    for vm_uuid in p.get("virtualmachineids") or []:
        vm, nic = vm_on_network(ctx, vm_uuid, network, "virtualmachineids")
        wanted.append((vm, nic.ip_address))
    for entry in p.get("vmidipmap") or []:
        vm, nic = vm_on_network(ctx, str(entry.get("vmid", "")).strip(), network, "vmidipmap",
                                guest_ip=entry.get("vmip"))
        wanted.append((vm, nic.ip_address))
    if not wanted:
        raise InvalidParameterError("give virtualmachineids or vmidipmap")
    return wanted


@api_command("assignToLoadBalancerRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Assigns virtual machine or a list of virtual machines to a load balancer rule.", params={
                 "id": P.uuid("the ID of the load balancer rule", required=True),
                 "virtualmachineids": P.list("the list of IDs of the virtual machine that are being assigned to the "
                                             "load balancer rule(i.e. virtualMachineIds=1,2,3)", item=P.uuid()),
                 "vmidipmap": P.map("VM ID and IP map, vmidipmap[0].vmid=1 vmidipmap[0].vmip=10.1.1.75"),
             })
def assign_to_load_balancer_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "LoadBalancing")
    present = {(m.vm_id, m.vm_ip) for m in rule.members if m.state != RuleState.REVOKE}
    added = []
    for vm, ip in _members(ctx, p, rule):
        if (vm.id, ip) in present:
            raise InvalidParameterError(f"VM {vm.name} ({ip}) is already assigned to load balancer {rule.name}")
        member = LoadBalancerMember(rule_id=rule.id, vm_id=vm.id, vm_ip=ip)
        ctx.session.add(member)
        ctx.session.flush()
        present.add((vm.id, ip))
        added.append(member.id)
    ctx.event("LB.ASSIGN.TO.RULE", f"Assigned {len(added)} VM(s) to load balancer {rule.name}", rule)
    return start_rules_job(ctx, ctx.session.get(Network, rule.network_id), render={"kind": "success"},
                           members_added=added, instance=rule)


@api_command("removeFromLoadBalancerRule", response="success", is_async=True, roles=ALL_ROLES,
             description="Removes a virtual machine or a list of virtual machines from a load balancer rule.", params={
                 "id": P.uuid("The ID of the load balancer rule", required=True),
                 "virtualmachineids": P.list("the list of IDs of the virtual machines that are being removed from "
                                             "the load balancer rule", item=P.uuid()),
                 "vmidipmap": P.map("VM ID and IP map, vmidipmap[0].vmid=1 vmidipmap[0].vmip=10.1.1.75"),
             })
def remove_from_load_balancer_rule(ctx, p):
    rule = owned_rule(ctx, p["id"], "LoadBalancing")
    revoked = []
    for vm, ip in _members(ctx, p, rule):
        member = next((m for m in rule.members if m.vm_id == vm.id and m.vm_ip == ip
                       and m.state != RuleState.REVOKE), None)
        if member is None:
            raise InvalidParameterError(f"VM {vm.name} is not assigned to load balancer {rule.name}")
        member.state = RuleState.REVOKE
        revoked.append(member.id)
    ctx.event("LB.REMOVE.FROM.RULE", f"Removed {len(revoked)} VM(s) from load balancer {rule.name}", rule)
    return start_rules_job(ctx, ctx.session.get(Network, rule.network_id), render={"kind": "success"},
                           members_revoked=revoked, instance=rule)


@api_command("listLoadBalancerRuleInstances", response="loadbalancerruleinstance", is_list=True, roles=ALL_ROLES,
             response_fields=VM_FIELDS, description="List all virtual machine instances that are assigned to a "
                                                    "load balancer rule.", params={
                 "id": P.uuid("the ID of the load balancer rule", required=True),
                 "applied": P.boolean("true (the default) lists VMs assigned to the rule"),
                 "lbvmips": P.boolean("true to list VMs with their load balanced addresses"),
             })
def list_load_balancer_rule_instances(ctx, p):
    rule = owned_rule(ctx, p["id"], "LoadBalancing")
    admin = ctx.caller.role_type != "User"
    members = [m for m in rule.members if m.state != RuleState.REVOKE]
    if p.get("applied", True) is False:
        network = ctx.session.get(Network, rule.network_id)
        taken = {m.vm_id for m in members}
        vms = [vm for vm in ctx.session.scalars(select(VirtualMachine).where(
            VirtualMachine.removed.is_(None), VirtualMachine.account_id == rule.account_id))
            if vm.id not in taken and any(n.network_id == network.id for n in vm.nics)]
        return len(vms), [vm_view(ctx.session, vm, admin=admin) for vm in vms]
    rows = []
    for member in members:
        vm = ctx.session.get(VirtualMachine, member.vm_id)
        view = vm_view(ctx.session, vm, admin=admin)
        if p.get("lbvmips"):
            rows.append({"loadbalancerruleinstance": view, "lbvmipaddresses": [member.vm_ip]})
        else:
            rows.append(view)
    return len(rows), rows


# -- stickiness ---------------------------------------------------------------------------------------


@api_command("createLBStickinessPolicy", response="stickinesspolicies", is_async=True, roles=ALL_ROLES,
             response_fields=STICKINESS_FIELDS, description="Creates a load balancer stickiness policy", params={
                 "lbruleid": P.uuid("the ID of the load balancer rule", required=True),
                 "methodname": P.string("name of the load balancer stickiness policy method: LbCookie, AppCookie "
                                        "or SourceBased", required=True),
                 "name": P.string("name of the load balancer stickiness policy", required=True),
                 "description": P.string("the description of the load balancer stickiness policy", max_length=4096),
                 "param": P.map("param list: param[0].name=cookie-name&param[0].value=SRV"),
                 "fordisplay": P.boolean("an optional field, whether to the display the rule to the end user"),
             })
def create_lb_stickiness_policy(ctx, p):
    rule = owned_rule(ctx, p["lbruleid"], "LoadBalancing")
    method = choice(ctx, "methodname", p["methodname"], STICKINESS_METHODS)
    if any(s.state != RuleState.REVOKE for s in rule.stickiness):
        raise InvalidParameterError(f"load balancer {rule.name} already has a stickiness policy; delete it first")
    params = {}
    for entry in p.get("param") or []:
        name, value = str(entry.get("name", "")).strip().lower(), str(entry.get("value", "")).strip()
        if not name or any(c in name + value for c in " \n\r\t#'\""):
            raise invalid(ctx, "param", f"'{name}={value}' is not a valid stickiness parameter")
        params[name] = value
    policy = StickinessPolicy(rule_id=rule.id, name=p["name"].strip(), description=p.get("description"),
                              method_name=method, params=params, state=RuleState.ADD)
    ctx.session.add(policy)
    ctx.session.flush()
    ctx.event("LB.STICKINESSPOLICY.CREATE", f"Added {method} stickiness to load balancer {rule.name}", rule)
    return start_rules_job(ctx, ctx.session.get(Network, rule.network_id),
                           render={"kind": "stickiness", "id": rule.uuid}, policies_added=[policy.uuid],
                           instance=rule)


@api_command("deleteLBStickinessPolicy", response="success", is_async=True, roles=ALL_ROLES,
             description="Deletes a load balancer stickiness policy.",
             params={"id": P.uuid("the ID of the LB stickiness policy", required=True)})
def delete_lb_stickiness_policy(ctx, p):
    policy = ctx.session.scalar(select(StickinessPolicy).where(StickinessPolicy.uuid == p["id"]))
    if policy is None:
        raise invalid(ctx, "id", f"no stickiness policy {p['id']}")
    rule = owned_rule(ctx, policy.rule.uuid, "LoadBalancing")
    if policy.state == RuleState.REVOKE:
        raise invalid(ctx, "id", f"stickiness policy {policy.uuid} is already being removed")
    policy.state = RuleState.REVOKE
    ctx.event("LB.STICKINESSPOLICY.DELETE", f"Removed stickiness from load balancer {rule.name}", rule)
    return start_rules_job(ctx, ctx.session.get(Network, rule.network_id), render={"kind": "success"},
                           policies_revoked=[policy.uuid], instance=rule)


@api_command("listLBStickinessPolicies", response="stickinesspolicies", is_list=True, roles=ALL_ROLES,
             response_fields=STICKINESS_FIELDS, description="Lists load balancer stickiness policies.", params={
                 "lbruleid": P.uuid("the ID of the load balancer rule"),
                 "id": P.uuid("the ID of the load balancer stickiness policy"),
             })
def list_lb_stickiness_policies(ctx, p):
    if "lbruleid" in p:
        rule = owned_rule(ctx, p["lbruleid"], "LoadBalancing")
    elif "id" in p:
        policy = ctx.session.scalar(select(StickinessPolicy).where(StickinessPolicy.uuid == p["id"]))
        if policy is None:
            raise invalid(ctx, "id", f"no stickiness policy {p['id']}")
        rule = owned_rule(ctx, policy.rule.uuid, "LoadBalancing")
    else:
        raise InvalidParameterError("give lbruleid or id")
    return 1, [stickiness_view(ctx.session, rule)]


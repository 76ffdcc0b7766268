"""The router's packet filter and NAT as one nftables table, ``ip strato``, in the router's
namespace. ``ruleset`` is pure: the whole table from a ``RouterSpec``; loading it
(``nft -f``) replaces the table in one kernel transaction, so a router is never between
two configurations. ``changes`` computes the element and rule commands that turn one
spec's table into another's when only port forwarding and firewall rules differ
(the incremental path); anything else needs the full table.

Interfaces inside the namespace: ``eth0`` guest side, ``eth1`` public side, ``tun0`` VPN.

* ingress (prerouting, before DNAT): on ``eth1`` only established traffic, firewall
  rules (chain ``fw_in``, one rule each: they may overlap, which nft interval sets refuse)
  and the VPN port pass; everything else to a public address is dropped;
* DNAT: port forwarding through two maps (``pf_port`` single ports, possibly to another
  port; ``pf_range`` ranges kept as they are), static NAT through ``snat_in``;
* forward: replies, DNAT'd traffic, guests out through ``egress`` (rules then the
  offering's default), VPN clients to guests;
* SNAT: static-NAT guests as their public address, the rest of the guest CIDR as the
  source-NAT address;
* hairpin: a guest reaching a port-forwarded or static-NAT public address of its own network
  is DNAT'd as from outside, and masqueraded as the router on the way back into ``eth0`` (so
  the target answers through the router); the router sends the guest no ICMP redirect for it.
"""

from __future__ import annotations

import dataclasses

from .spec import FirewallRule, PortForward, RouterSpec

TABLE = "strato"
GUEST, PUBLIC, VPN = "eth0", "eth1", "tun0"

HEADER = f"table ip {TABLE}\ndelete table ip {TABLE}\n"


def _set(items) -> str:
    items = list(items)
    return "{ " + ", ".join(items) + " }"


def _ports(start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    return f"{start}" if end in (None, start) else f"{start}-{end}"


def _cidrs(cidrs: tuple[str, ...]) -> list[str]:
    return [c for c in cidrs if c not in ("0.0.0.0/0",)]


def firewall_expr(rule: FirewallRule) -> str:
    """The match of an ingress firewall rule (on its public address)."""
    parts = [f"ip daddr {rule.public}"]
    parts += _proto_match(rule)
    sources = _cidrs(rule.cidrs)
    if sources:
        parts.append(f"ip saddr {_set(sources)}")
    return " ".join(parts) + f' accept comment "{comment(rule)}"'


def egress_expr(rule: FirewallRule, guest_cidr: str, default_allow: bool) -> str:
    """An egress rule: with a default of allow the rules block, with deny they allow."""
    sources = _cidrs(rule.cidrs) or [guest_cidr]
    parts = [f"ip saddr {_set(sources)}"]
    dests = _cidrs(rule.dest_cidrs)
    if dests:
        parts.append(f"ip daddr {_set(dests)}")
    parts += _proto_match(rule)
    verdict = "drop" if default_allow else "accept"
    return " ".join(parts) + f' {verdict} comment "{comment(rule)}"'


def _proto_match(rule: FirewallRule) -> list[str]:
    if rule.protocol in ("tcp", "udp"):
        ports = _ports(rule.start, rule.end)
        return [f"{rule.protocol} dport {ports}"] if ports else [f"meta l4proto {rule.protocol}"]
    if rule.protocol == "icmp":
        parts = ["meta l4proto icmp"]
        if rule.icmp_type not in (None, -1):
            parts.append(f"icmp type {rule.icmp_type}")
            if rule.icmp_code not in (None, -1):
                parts.append(f"icmp code {rule.icmp_code}")
        return parts
    return []  # all protocols


def comment(rule: FirewallRule) -> str:
    return f"rule-{rule.id}"


def pf_elements(pf: PortForward) -> tuple[str, list[str]]:
    """(map name, elements) of one port-forwarding rule."""
    if pf.public_start == pf.private_start and pf.public_end == pf.private_end and pf.public_start != pf.public_end:
        return "pf_range", [f"{pf.public} . {pf.protocol} . {pf.public_start}-{pf.public_end} : {pf.private_ip}"]
    # single ports, or a range moved to other ports: one element per port (the offset is kept)
    offset = pf.private_start - pf.public_start
    return "pf_port", [f"{pf.public} . {pf.protocol} . {port} : {pf.private_ip} . {port + offset}"
                       for port in range(pf.public_start, pf.public_end + 1)]


def ruleset(spec: RouterSpec) -> str:
    """The complete ``ip strato`` table for ``spec``, as ``nft -f`` input (replacing any old one)."""
    out = [HEADER, f"table ip {TABLE} {{"]
    public = spec.public
    pf_port: list[str] = []
    pf_range: list[str] = []
    for pf in spec.port_forwarding:
        name, elements = pf_elements(pf)
        (pf_port if name == "pf_port" else pf_range).extend(elements)

    def elements(items: list[str]) -> str:
        return f" elements = {_set(items)};" if items else ""

    out.append(f"  set public_ips {{ type ipv4_addr;{elements(list(public.addresses) if public else [])} }}")
    out.append("  map pf_port { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service;"
               f"{elements(pf_port)} }}")
    out.append("  map pf_range { type ipv4_addr . inet_proto . inet_service : ipv4_addr; flags interval;"
               f"{elements(pf_range)} }}")
    out.append("  map snat_in { type ipv4_addr : ipv4_addr;"
               f"{elements([f'{s.public} : {s.private}' for s in spec.static_nat])} }}")
    out.append("  map snat_out { type ipv4_addr : ipv4_addr;"
               f"{elements([f'{s.private} : {s.public}' for s in spec.static_nat])} }}")

    out.append("  chain fw_in {")
    out += [f"    {firewall_expr(rule)}" for rule in spec.firewall]
    out.append("  }")

    out.append("  chain ingress {")
    out.append("    type filter hook prerouting priority -150; policy accept;")
    if public is not None:
        out.append(f'    iifname "{PUBLIC}" ct state established,related accept')
        out.append(f'    iifname "{PUBLIC}" ip daddr != @public_ips drop')
        out.append(f'    iifname "{PUBLIC}" jump fw_in')
        if spec.vpn is not None:
            out.append(f'    iifname "{PUBLIC}" ip daddr {spec.vpn.public} udp dport {spec.vpn.port} accept')
        out.append(f'    iifname "{PUBLIC}" drop')
    out.append("  }")

    out.append("  chain nat_pre {")
    out.append("    type nat hook prerouting priority dstnat; policy accept;")
    if public is not None:
        out.append(f'    iifname "{PUBLIC}" dnat ip to ip daddr . meta l4proto . th dport map @pf_port')
        out.append(f'    iifname "{PUBLIC}" dnat ip to ip daddr . meta l4proto . th dport map @pf_range')
        out.append(f'    iifname "{PUBLIC}" dnat ip to ip daddr map @snat_in')
        # hairpin: a guest reaching a public address of its own network is forwarded the same way
        out.append(f'    iifname "{GUEST}" ip daddr @public_ips dnat ip to ip daddr . meta l4proto . th dport map @pf_port')
        out.append(f'    iifname "{GUEST}" ip daddr @public_ips dnat ip to ip daddr . meta l4proto . th dport map '
                   '@pf_range')
        out.append(f'    iifname "{GUEST}" ip daddr @public_ips dnat ip to ip daddr map @snat_in')
    out.append("  }")

    out.append("  chain nat_post {")
    out.append("    type nat hook postrouting priority srcnat; policy accept;")
    if public is not None:
        out.append(f'    oifname "{PUBLIC}" snat ip to ip saddr map @snat_out')
        if public.source_nat and spec.has("SourceNat"):
            out.append(f'    oifname "{PUBLIC}" ip saddr {spec.cidr} snat ip to {public.source_nat}')
        # hairpin: the target answers the router, not the guest directly (which expects the public address)
        out.append(f'    iifname "{GUEST}" oifname "{GUEST}" ct status dnat masquerade')
    out.append("  }")

    out.append("  chain egress {")
    out += [f"    {egress_expr(rule, spec.cidr, spec.egress_default_allow)}" for rule in spec.egress]
    out.append("  }")

    out.append("  chain forward {")
    out.append("    type filter hook forward priority filter; policy drop;")
    out.append("    ct state established,related accept")
    out.append("    ct state invalid drop")
    if public is not None:
        out.append(f'    iifname "{PUBLIC}" oifname "{GUEST}" ct status dnat accept')
        out.append(f'    iifname "{GUEST}" oifname "{GUEST}" ct status dnat accept')
        out.append(f'    iifname "{GUEST}" oifname "{PUBLIC}" jump egress')
        default = "accept" if spec.egress_default_allow else "drop"
        out.append(f'    iifname "{GUEST}" oifname "{PUBLIC}" {default}')
    if spec.vpn is not None:
        out.append(f'    iifname "{VPN}" oifname "{GUEST}" accept')
    out.append("  }")
    if public is not None:
        # hairpinned packets leave by the interface they came in: a redirect would send the guest
        # straight to the target, which does not own the public address
        out.append("  chain out {")
        out.append("    type filter hook output priority filter; policy accept;")
        out.append(f'    oifname "{GUEST}" icmp type redirect drop')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


# -- the incremental path ---------------------------------------------------------------------


@dataclasses.dataclass
class Changes:
    """What turns the table of one spec into that of another: set elements to add and
    delete, firewall rules (by comment) to add and delete."""

    add_elements: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    delete_elements: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    add_rules: list[str] = dataclasses.field(default_factory=list)
    delete_rules: list[str] = dataclasses.field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add_elements or self.delete_elements or self.add_rules or self.delete_rules)


def _skeleton(spec: RouterSpec) -> RouterSpec:
    return dataclasses.replace(spec, port_forwarding=(), firewall=(), nics=(), load_balancers=(),
                               vpn=dataclasses.replace(spec.vpn, users=()) if spec.vpn else None)


def changes(old: RouterSpec, new: RouterSpec) -> Changes | None:
    """The incremental changes from ``old``'s table to ``new``'s, or None when anything
    besides port forwarding and ingress firewall rules differs (then load ``ruleset``)."""
    if ruleset(_skeleton(old)) != ruleset(_skeleton(new)):
        return None
    result = Changes()
    old_pf = {pf.id: pf for pf in old.port_forwarding}
    new_pf = {pf.id: pf for pf in new.port_forwarding}
    for rule_id in old_pf.keys() - new_pf.keys() | {i for i in old_pf.keys() & new_pf.keys()
                                                    if old_pf[i] != new_pf[i]}:
        name, elements = pf_elements(old_pf[rule_id])
        result.delete_elements.setdefault(name, []).extend(elements)
    for rule_id in new_pf.keys() - old_pf.keys() | {i for i in old_pf.keys() & new_pf.keys()
                                                    if old_pf[i] != new_pf[i]}:
        name, elements = pf_elements(new_pf[rule_id])
        result.add_elements.setdefault(name, []).extend(elements)
    old_fw = {r.id: r for r in old.firewall}
    new_fw = {r.id: r for r in new.firewall}
    for rule_id in sorted(old_fw.keys() - new_fw.keys() | {i for i in old_fw.keys() & new_fw.keys()
                                                           if old_fw[i] != new_fw[i]}):
        result.delete_rules.append(comment(old_fw[rule_id]))
    for rule_id in sorted(new_fw.keys() - old_fw.keys() | {i for i in old_fw.keys() & new_fw.keys()
                                                           if old_fw[i] != new_fw[i]}):
        result.add_rules.append(firewall_expr(new_fw[rule_id]))
    return result


def change_script(change: Changes, handles: dict[str, int]) -> str:
    """``nft -f`` input for ``change``; ``handles`` maps rule comments to handles in ``fw_in``."""
    lines = []
    for rule in change.delete_rules:
        lines.append(f"delete rule ip {TABLE} fw_in handle {handles[rule]}")
    for name, items in change.delete_elements.items():
        lines.append(f"delete element ip {TABLE} {name} {_set(items)}")
    for name, items in change.add_elements.items():
        lines.append(f"add element ip {TABLE} {name} {_set(items)}")
    for expr in change.add_rules:
        lines.append(f"add rule ip {TABLE} fw_in {expr}")
    return "\n".join(lines) + "\n"


def rule_handles(listing: str) -> dict[str, int]:
    """{comment: handle} from ``nft -a list chain ip strato fw_in``."""
    handles = {}
    for line in listing.splitlines():
        if 'comment "' in line and "# handle " in line:
            name = line.split('comment "', 1)[1].split('"', 1)[0]
            handles[name] = int(line.rsplit("# handle ", 1)[1].split()[0])
    return handles

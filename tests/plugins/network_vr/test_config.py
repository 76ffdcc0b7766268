"""The router's configuration builders, which are pure: spec in, text out."""

from __future__ import annotations

import copy

import pytest

from plugins.network_vr import dnsmasq, haproxy, nftables, openvpn
from plugins.network_vr.spec import parse
from plugins.network_vr.system import Names


def network(**changes) -> dict:
    base = {
        "uuid": "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "name": "net1", "guest_type": "Isolated",
        "cidr": "10.1.1.0/24", "gateway": "10.1.1.1", "network_domain": "cs1cloud.internal", "dns": ["192.0.2.53"],
        "services": ["Dhcp", "Dns", "UserData", "SourceNat", "StaticNat", "PortForwarding", "Firewall", "Lb"],
        "router": {"state": "Running", "name": "r-1-VM", "guest_ip": "10.1.1.1"},
        "public": {"bridge": "cloudbr0", "gateway": "198.51.100.1", "netmask": "255.255.255.0",
                   "addresses": ["198.51.100.10", "198.51.100.11"], "source_nat": "198.51.100.10"},
        "nics": [{"mac": "02:00:00:00:00:0B", "ip": "10.1.1.11", "hostname": "b", "vm": "vm-b"},
                 {"mac": "02:00:00:00:00:0a", "ip": "10.1.1.10", "hostname": "a", "vm": "vm-a"}],
        "port_forwarding": [{"id": "pf1", "public": "198.51.100.11", "protocol": "tcp", "public_start": 8080,
                             "public_end": 8080, "private_ip": "10.1.1.10", "private_start": 80, "private_end": 80}],
        "firewall": [{"id": "fw1", "public": "198.51.100.11", "protocol": "tcp", "start": 8080, "end": 8080,
                      "cidrs": ["0.0.0.0/0"]}],
        "static_nat": [], "load_balancers": [], "egress": {"default_allow": True, "rules": []}, "vpn": None,
    }
    base.update(changes)
    return base


def test_the_ruleset_replaces_the_whole_table_and_names_every_rule():
    text = nftables.ruleset(parse(network()))
    assert text.startswith("table ip strato\ndelete table ip strato\n")
    assert "198.51.100.11 . tcp . 8080 : 10.1.1.10 . 80" in text
    assert 'ip daddr 198.51.100.11 tcp dport 8080 accept comment "rule-fw1"' in text
    assert "oifname \"eth1\" ip saddr 10.1.1.0/24 snat ip to 198.51.100.10" in text
    assert "elements = { 198.51.100.10, 198.51.100.11 }" in text
    assert 'iifname "eth0" oifname "eth1" accept' in text  # default allow


def test_port_ranges_keep_their_ports_or_move_by_their_offset():
    kept = nftables.pf_elements(parse(network()).port_forwarding[0].__class__(
        "r", "198.51.100.11", "udp", 5000, 5010, "10.1.1.10", 5000, 5010))
    assert kept == ("pf_range", ["198.51.100.11 . udp . 5000-5010 : 10.1.1.10"])
    moved = nftables.pf_elements(parse(network()).port_forwarding[0].__class__(
        "r", "198.51.100.11", "tcp", 2000, 2002, "10.1.1.10", 3000, 3002))
    assert moved == ("pf_port", [f"198.51.100.11 . tcp . {p} : 10.1.1.10 . {p + 1000}" for p in (2000, 2001, 2002)])


def test_egress_rules_block_under_allow_and_allow_under_deny():
    rule = {"id": "e1", "protocol": "tcp", "start": 25, "end": 25, "cidrs": [], "dest_cidrs": ["203.0.113.0/24"]}
    allow = nftables.ruleset(parse(network(egress={"default_allow": True, "rules": [rule]})))
    deny = nftables.ruleset(parse(network(egress={"default_allow": False, "rules": [rule]})))
    assert 'ip saddr { 10.1.1.0/24 } ip daddr { 203.0.113.0/24 } tcp dport 25 drop comment "rule-e1"' in allow
    assert 'tcp dport 25 accept comment "rule-e1"' in deny
    assert 'iifname "eth0" oifname "eth1" drop' in deny


def test_only_rule_changes_go_the_incremental_way():
    old = parse(network())
    added = copy.deepcopy(network())
    added["port_forwarding"].append({"id": "pf2", "public": "198.51.100.11", "protocol": "udp", "public_start": 53,
                                     "public_end": 53, "private_ip": "10.1.1.11", "private_start": 53,
                                     "private_end": 53})
    added["firewall"] = []
    change = nftables.changes(old, parse(added))
    assert change.add_elements == {"pf_port": ["198.51.100.11 . udp . 53 : 10.1.1.11 . 53"]}
    assert change.delete_rules == ["rule-fw1"] and not change.delete_elements
    script = nftables.change_script(change, {"rule-fw1": 7})
    assert "delete rule ip strato fw_in handle 7" in script
    # a new public address changes the table's skeleton: the full table is needed
    more = network()
    more["public"] = {**more["public"], "addresses": ["198.51.100.10", "198.51.100.11", "198.51.100.12"]}
    assert nftables.changes(old, parse(more)) is None
    assert nftables.changes(old, parse(network())).empty


def test_rule_handles_are_read_back_from_an_nft_listing():
    listing = '\t\tip daddr 198.51.100.11 tcp dport 8080 accept comment "rule-fw1" # handle 12\n'
    assert nftables.rule_handles(listing) == {"rule-fw1": 12}


def test_dnsmasq_gives_static_leases_only_with_the_vm_names(tmp_path):
    spec = parse(network())
    conf = dnsmasq.config(spec, tmp_path)
    assert "dhcp-range=set:guest,10.1.1.0,static,255.255.255.0,infinite" in conf
    assert "dhcp-option=tag:guest,option:dns-server,10.1.1.1" in conf
    assert "server=192.0.2.53" in conf and "domain=cs1cloud.internal" in conf
    assert dnsmasq.dhcp_hosts(spec) == "02:00:00:00:00:0a,10.1.1.10,a,infinite\n02:00:00:00:00:0b,10.1.1.11,b,infinite\n"
    assert dnsmasq.dns_hosts(spec).splitlines() == ["10.1.1.1 r-1-VM", "10.1.1.10 a", "10.1.1.11 b"]
    without_dns = parse(network(services=["Dhcp"], dns=["192.0.2.53"]))
    assert "port=0" in dnsmasq.config(without_dns, tmp_path)
    assert "option:dns-server,192.0.2.53" in dnsmasq.config(without_dns, tmp_path)


def test_haproxy_maps_algorithms_and_stickiness(tmp_path):
    lb = {"id": "lb1", "name": "web", "public": "198.51.100.11", "public_port": 80, "private_port": 8080,
          "algorithm": "leastconn", "members": ["10.1.1.11", "10.1.1.10"],
          "stickiness": {"method": "SourceBased", "params": {"expire": "10m"}}}
    text = haproxy.config(parse(network(load_balancers=[lb])), tmp_path)
    assert "bind 198.51.100.11:80" in text and "balance leastconn" in text
    assert "stick-table type ip size 200k expire 10m" in text and "stick on src" in text
    assert "server m0 10.1.1.10:8080" in text and "server m1 10.1.1.11:8080" in text
    cookie = dict(lb, stickiness={"method": "LbCookie", "params": {"cookie-name": "SRVID"}})
    text = haproxy.config(parse(network(load_balancers=[cookie])), tmp_path)
    assert "mode http" in text and "cookie SRVID insert indirect nocache" in text and "cookie m0" in text


def test_the_vpn_key_is_derived_from_the_pre_shared_key_alone():
    key = openvpn.tls_crypt_key("s3cret")
    assert key == openvpn.tls_crypt_key("s3cret") != openvpn.tls_crypt_key("other")
    lines = key.strip().splitlines()
    assert lines[0] == "-----BEGIN OpenVPN Static key V1-----" and len(lines) == 18
    assert all(len(line) == 32 for line in lines[1:-1])


def test_host_names_fit_linux_and_depend_on_the_network_only():
    names = Names("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "s")
    assert names.bridge == "sb0f1e2d3c4b" and len(names.public_veth) <= 15
    assert names.mac("guest") == Names("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "s").mac("guest")
    with pytest.raises(ValueError):
        Names("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "toolong")


def test_vlan_tags_are_read_as_numbers_and_untagged_as_none():
    spec = parse(network(vlan="vlan://100", public={**network()["public"], "vlan": "vlan://300"}))
    assert spec.vlan == "100" and spec.public.vlan == "300"
    spec = parse(network(vlan="untagged", public={**network()["public"], "vlan": None}))
    assert spec.vlan is None and spec.public.vlan is None
    names = Names("0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9", "s")
    assert names.ovs_port == "sq0f1e2d3c4b" and names.vlan_link == "sv0f1e2d3c4b"


def test_the_vlan_backend_setting_is_checked_at_start_up():
    from core.errors import ConfigurationError
    from plugins.network_vr.element import VirtualRouterElement
    from plugins.network_vr.ovs import trunk_name

    assert VirtualRouterElement({"vlan_backend": "ovs"}).vlan_backend == "ovs"
    assert VirtualRouterElement({}).vlan_backend == "auto"
    with pytest.raises(ConfigurationError, match="vlan_backend is 'bridge'"):
        VirtualRouterElement({"vlan_backend": "bridge"})
    # one trunk bridge per uplink, its name fit for Linux whatever the uplink is called
    assert trunk_name("eth0", "s") == trunk_name("eth0", "s") != trunk_name("eth1", "s")
    assert len(trunk_name("a-very-long-device-name", "s")) <= 15

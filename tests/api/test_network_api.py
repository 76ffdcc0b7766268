"""Networking through the API where no router has to run: offerings, physical networks,
IP ranges, networks, public addresses and rules on networks that are not implemented yet
(VMs deployed with startvm=false), bad input and other accounts' resources.

The router itself, with real packets, is tested in tests/plugins/network_vr/.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id


@pytest.fixture
def settings(settings, tmp_path):
    settings.plugins = {**settings.plugins, "network": ["vr"]}
    settings.plugin_config = {**settings.plugin_config, "vr": {"prefix": "t", "state_dir": str(tmp_path / "vr")}}
    return settings


def error(call, *args, **kw) -> ApiError:
    with pytest.raises(ApiError) as caught:
        result = call(*args, **kw)
        if isinstance(result, dict) and "jobid" in result:
            call.wait(result)
    return caught.value


@pytest.fixture
def zone(cloud, admin):
    from core.model import Zone

    ids = simulated_zone(cloud)
    with cloud.db.transaction() as session:
        row = session.scalars(sa.select(Zone).where(Zone.uuid == ids["zone"])).one()
        row.network_type = "Advanced"
    physical = admin.wait(admin("createPhysicalNetwork", zoneid=ids["zone"], name="pn1", vlan="100-101"))
    pn = physical["physicalnetwork"]
    admin.wait(admin("addTrafficType", physicalnetworkid=pn["id"], traffictype="Guest"))
    admin.wait(admin("addTrafficType", physicalnetworkid=pn["id"], traffictype="Public", kvmnetworklabel="cloudbr0"))
    vlan = admin("createVlanIpRange", zoneid=ids["zone"], forvirtualnetwork=True, gateway="198.51.100.1",
                 netmask="255.255.255.0", startip="198.51.100.10", endip="198.51.100.13")["vlan"]
    return {**ids, "physical": pn["id"], "range": vlan["id"]}


@pytest.fixture
def alice(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "alice"))


@pytest.fixture
def mallory(app, cloud):
    return ApiClient.for_user(app, cloud, make_account(cloud, "mallory"))


def isolated_offering(client) -> str:
    return client("listNetworkOfferings", name="DefaultIsolatedNetworkOfferingWithSourceNatService")[
        "networkoffering"][0]["id"]


def network_of(client, zone, name="net") -> dict:
    return client("createNetwork", name=name, zoneid=zone["zone"], networkofferingid=isolated_offering(client))["network"]


def stopped_vm(client, cloud, zone, network, name="vm1") -> dict:
    job = client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                 templateid=zone["template"], networkids=network["id"], name=name, startvm=False)
    return client.wait(job)["virtualmachine"]


# -- offerings ---------------------------------------------------------------------------------


def test_cloudstacks_default_network_offerings_are_there(alice):
    offerings = {o["name"]: o for o in alice("listNetworkOfferings")["networkoffering"]}
    assert {"DefaultIsolatedNetworkOfferingWithSourceNatService", "DefaultSharedNetworkOffering",
            "DefaultIsolatedNetworkOffering", "DefaultL2NetworkOffering"} <= set(offerings)
    snat = offerings["DefaultIsolatedNetworkOfferingWithSourceNatService"]
    assert snat["availability"] == "Required" and snat["guestiptype"] == "Isolated" and snat["state"] == "Enabled"
    services = {s["name"]: s["provider"][0]["name"] for s in snat["service"]}
    assert services["SourceNat"] == "VirtualRouter" and {"Dhcp", "Dns", "Lb", "Vpn", "StaticNat"} <= set(services)
    shared = offerings["DefaultSharedNetworkOffering"]
    assert shared["specifyvlan"] is True and {s["name"] for s in shared["service"]} == {"Dhcp", "Dns", "UserData"}
    assert alice("listNetworkOfferings", supportedservices="SourceNat")["count"] == 1


def test_network_offerings_are_created_disabled_validated_and_kept_while_used(admin, alice, zone):
    made = admin("createNetworkOffering", name="lb-only", guestiptype="Isolated",
                 supportedservices="Dhcp,Dns,SourceNat,Lb",
                 **{"serviceproviderlist[0].service": "Lb", "serviceproviderlist[0].provider": "VirtualRouter"})
    offering = made["networkoffering"]
    assert offering["state"] == "Disabled" and offering["egressdefaultpolicy"] is True
    assert offering["id"] not in [o["id"] for o in alice("listNetworkOfferings")["networkoffering"]]
    assert error(alice, "createNetwork", name="n", zoneid=zone["zone"], networkofferingid=offering["id"]).status == 431
    admin("updateNetworkOffering", id=offering["id"], state="Enabled")
    network_of_lb = alice("createNetwork", name="n", zoneid=zone["zone"], networkofferingid=offering["id"])
    assert network_of_lb["network"]["networkofferingname"] == "lb-only"
    assert error(admin, "deleteNetworkOffering", id=offering["id"]).status == 536
    for bad, param in ((dict(supportedservices="Dhcp,Teleport"), "supportedservices"),
                       (dict(supportedservices="Dhcp,PortForwarding"), "supportedservices"),
                       (dict(guestiptype="Mesh"), "guestiptype")):
        exc = error(admin, "createNetworkOffering", **{"name": "bad", "guestiptype": "Isolated", **bad})
        assert exc.status == 431 and param in exc.body["errortext"]
    default = isolated_offering(admin)
    assert error(admin, "deleteNetworkOffering", id=default).status == 431
    assert error(alice, "createNetworkOffering", name="x", guestiptype="Isolated").status == 432


# -- physical networks and ranges ----------------------------------------------------------------


def test_physical_networks_carry_traffic_types_and_the_virtual_router_provider(admin, zone):
    listed = admin("listPhysicalNetworks", zoneid=zone["zone"])["physicalnetwork"]
    assert [p["vlan"] for p in listed] == ["100-101"]
    types = admin("listTrafficTypes", physicalnetworkid=zone["physical"])["traffictype"]
    assert {t["traffictype"]: t.get("kvmnetworklabel") for t in types} == {"Guest": None, "Public": "cloudbr0"}
    assert error(admin, "addTrafficType", physicalnetworkid=zone["physical"], traffictype="Guest").status == 431
    provider = admin("listNetworkServiceProviders", physicalnetworkid=zone["physical"],
                     name="VirtualRouter")["networkserviceprovider"][0]
    assert provider["state"] == "Enabled" and "SourceNat" in provider["servicelist"]
    element = admin("listVirtualRouterElements", nspid=provider["id"])["virtualrouterelement"][0]
    assert admin.wait(admin("configureVirtualRouterElement", id=element["id"], enabled=False))[
        "virtualrouterelement"]["enabled"] is False
    assert error(admin, "createPhysicalNetwork", zoneid=zone["zone"], name="x", vlan="5000-5001").status == 431
    assert error(admin, "updatePhysicalNetwork", id=zone["physical"], state="Sideways").status == 431


def test_public_ranges_refuse_overlaps_and_in_use_deletion(admin, alice, zone):
    ranges = admin("listVlanIpRanges", zoneid=zone["zone"])["vlaniprange"]
    assert [(r["startip"], r["endip"], r["forvirtualnetwork"]) for r in ranges] == [
        ("198.51.100.10", "198.51.100.13", True)]
    exc = error(admin, "createVlanIpRange", zoneid=zone["zone"], forvirtualnetwork=True, gateway="198.51.100.1",
                netmask="255.255.255.0", startip="198.51.100.12", endip="198.51.100.20")
    assert exc.status == 537 and zone["range"] in exc.body["errortext"]
    exc = error(admin, "createVlanIpRange", zoneid=zone["zone"], gateway="198.51.100.1", netmask="255.255.255.0",
                startip="198.51.100.40", endip="198.51.100.30")
    assert exc.status == 431 and "endip" in exc.body["errortext"]
    assert error(alice, "createVlanIpRange", zoneid=zone["zone"], gateway="198.51.100.1", netmask="255.255.255.0",
                 startip="198.51.100.40").status == 432
    network = network_of(alice, zone)
    alice.wait(alice("associateIpAddress", networkid=network["id"]))
    assert error(admin, "deleteVlanIpRange", id=zone["range"]).status == 536


# -- networks --------------------------------------------------------------------------------------


def test_an_isolated_network_is_allocated_until_its_first_vm_runs(alice, zone):
    network = network_of(alice, zone)
    assert network["state"] == "Allocated" and network["type"] == "Isolated" and network["acltype"] == "Account"
    assert network["cidr"] == "10.1.1.0/24" and network["gateway"] == "10.1.1.1" and network["account"] == "alice"
    assert {s["name"] for s in network["service"]} >= {"SourceNat", "Dhcp"}
    assert [n["id"] for n in alice("listNetworks")["network"]] == [network["id"]]
    updated = alice.wait(alice("updateNetwork", id=network["id"], name="renamed", networkdomain="example.internal"))
    assert updated["network"]["name"] == "renamed" and updated["network"]["networkdomain"] == "example.internal"
    assert alice.wait(alice("deleteNetwork", id=network["id"])) == {"success": True}
    assert alice("listNetworks") == {}


def test_shared_networks_need_an_admin_a_vlan_and_a_cidr_nobody_else_uses(admin, alice, zone):
    shared = admin("listNetworkOfferings", name="DefaultSharedNetworkOffering")["networkoffering"][0]["id"]
    args = dict(zoneid=zone["zone"], networkofferingid=shared, gateway="192.0.2.1", netmask="255.255.255.0",
                startip="192.0.2.10", endip="192.0.2.50")
    assert error(alice, "createNetwork", name="s", vlan="200", **args).status == 531
    assert error(admin, "createNetwork", name="s", **args).status == 431  # no vlan
    network = admin("createNetwork", name="s1", vlan="200", **args)["network"]
    assert network["type"] == "Shared" and network["state"] == "Setup" and network["vlan"] == "200"
    assert network["acltype"] == "Domain"
    # users see (and may deploy on) a zone-wide shared network
    assert network["id"] in [n["id"] for n in alice("listNetworks")["network"]]
    overlap = error(admin, "createNetwork", name="s2", vlan="200", **{**args, "gateway": "192.0.2.129",
                                                                       "netmask": "255.255.255.128",
                                                                       "startip": "192.0.2.130",
                                                                       "endip": "192.0.2.140"})
    assert overlap.status == 537 and network["id"] in overlap.body["errortext"]
    taken = error(admin, "createNetwork", name="s3", vlan="200", **{**args, "gateway": "203.0.113.1",
                                                                    "startip": "203.0.113.10", "endip": "203.0.113.20"})
    assert taken.status == 537 and "VLAN 200" in taken.body["errortext"]
    ranges = admin("listVlanIpRanges", networkid=network["id"])["vlaniprange"]
    assert [(r["startip"], r["endip"], r["forvirtualnetwork"]) for r in ranges] == [("192.0.2.10", "192.0.2.50", False)]
    more = admin("createVlanIpRange", networkid=network["id"], startip="192.0.2.60", endip="192.0.2.70")["vlan"]
    assert admin("listNetworks", id=network["id"])["network"][0]["id"] == network["id"]
    assert admin("deleteVlanIpRange", id=more["id"]) == {"success": True}


def test_l2_networks_have_no_addresses(admin, alice, zone, cloud):
    l2 = alice("listNetworkOfferings", name="DefaultL2NetworkOffering")["networkoffering"][0]["id"]
    network = alice("createNetwork", name="flat", zoneid=zone["zone"], networkofferingid=l2)["network"]
    assert network["type"] == "L2" and "cidr" not in network and network["service"] == []
    vm = stopped_vm(alice, cloud, zone, network)
    assert "ipaddress" not in vm["nic"][0] and vm["nic"][0]["macaddress"]


def test_a_deploy_without_networkids_creates_the_accounts_default_network_once(alice, cloud, zone):
    first = alice.wait(alice("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                             templateid=zone["template"], startvm=False))["virtualmachine"]
    second = alice.wait(alice("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                              templateid=zone["template"], startvm=False))["virtualmachine"]
    assert first["nic"][0]["networkid"] == second["nic"][0]["networkid"]
    networks = alice("listNetworks")["network"]
    assert [n["name"] for n in networks] == ["alice-network"] and networks[0]["isdefault"] is True
    assert {first["nic"][0]["ipaddress"], second["nic"][0]["ipaddress"]} == {"10.1.1.2", "10.1.1.3"}
    network_of(alice, zone, name="second")
    exc = error(alice, "deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                templateid=zone["template"], startvm=False)
    assert exc.status == 431 and "networkids" in exc.body["errortext"]


def test_a_network_with_vms_is_not_deleted(alice, cloud, zone):
    network = network_of(alice, zone)
    stopped_vm(alice, cloud, zone, network)
    assert error(alice, "deleteNetwork", id=network["id"]).status == 536


# -- public addresses --------------------------------------------------------------------------


def test_addresses_go_lowest_first_never_twice_and_run_out_with_533(alice, mallory, zone):
    network = network_of(alice, zone)
    got = [alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]["ipaddress"]
           for _ in range(2)]
    assert got == ["198.51.100.10", "198.51.100.11"]
    theirs = network_of(mallory, zone, "theirs")
    exc = error(mallory, "associateIpAddress", networkid=theirs["id"], ipaddress="198.51.100.10")
    assert exc.status == 537 and "198.51.100.10" in exc.body["errortext"]
    mallory.wait(mallory("associateIpAddress", networkid=theirs["id"]))
    mallory.wait(mallory("associateIpAddress", networkid=theirs["id"]))
    assert error(mallory, "associateIpAddress", networkid=theirs["id"]).status == 533
    assert error(mallory, "associateIpAddress", networkid=network["id"]).status == 531
    assert [a["ipaddress"] for a in alice("listPublicIpAddresses")["publicipaddress"]] == got
    mine = alice("listPublicIpAddresses", ipaddress="198.51.100.10")["publicipaddress"][0]
    assert error(mallory, "disassociateIpAddress", id=mine["id"]).status == 531
    assert alice.wait(alice("disassociateIpAddress", id=mine["id"])) == {"success": True}
    assert [a["ipaddress"] for a in alice("listPublicIpAddresses")["publicipaddress"]] == ["198.51.100.11"]


# -- rules on a network whose router is not up yet -----------------------------------------------------


@pytest.fixture
def rules_world(alice, cloud, zone):
    network = network_of(alice, zone)
    vm = stopped_vm(alice, cloud, zone, network)
    ip = alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]
    return network, vm, ip


def test_port_forwarding_conflicts_are_537_naming_the_rule(alice, rules_world):
    network, vm, ip = rules_world
    rule = alice.wait(alice("createPortForwardingRule", ipaddressid=ip["id"], protocol="TCP", publicport=8000,
                            publicendport=8010, privateport=8000, privateendport=8010,
                            virtualmachineid=vm["id"]))["portforwardingrule"]
    assert rule["state"] == "Active" and rule["publicendport"] == "8010" and rule["protocol"] == "tcp"
    exc = error(alice, "createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=8005,
                privateport=22, virtualmachineid=vm["id"])
    assert exc.status == 537 and rule["id"] in exc.body["errortext"] and "8000-8010" in exc.body["errortext"]
    # the same ports on udp, or on a load balancer of another port, are fine
    alice.wait(alice("createPortForwardingRule", ipaddressid=ip["id"], protocol="udp", publicport=8005,
                     privateport=8005, virtualmachineid=vm["id"]))
    exc = error(alice, "createLoadBalancerRule", name="web", publicipid=ip["id"], publicport=8008, privateport=80,
                algorithm="roundrobin")
    assert exc.status == 537 and rule["id"] in exc.body["errortext"]
    for bad, param in ((dict(publicport=70000), "publicport"), (dict(protocol="icmp"), "protocol"),
                       (dict(privateendport=30), "privateendport")):
        exc = error(alice, "createPortForwardingRule", **{"ipaddressid": ip["id"], "protocol": "tcp",
                                                           "publicport": 9000, "privateport": 22,
                                                           "virtualmachineid": vm["id"], **bad})
        assert exc.status == 431 and param in exc.body["errortext"]
    assert len(alice("listPortForwardingRules", ipaddressid=ip["id"])["portforwardingrule"]) == 2


def test_firewall_and_egress_duplicates_are_537(alice, rules_world):
    network, vm, ip = rules_world
    fw = alice.wait(alice("createFirewallRule", ipaddressid=ip["id"], protocol="tcp", startport=22, endport=25,
                          cidrlist="203.0.113.0/24"))["firewallrule"]
    exc = error(alice, "createFirewallRule", ipaddressid=ip["id"], protocol="tcp", startport=25,
                cidrlist="203.0.113.0/24")
    assert exc.status == 537 and fw["id"] in exc.body["errortext"]
    alice.wait(alice("createFirewallRule", ipaddressid=ip["id"], protocol="tcp", startport=25, cidrlist="0.0.0.0/0"))
    alice.wait(alice("createFirewallRule", ipaddressid=ip["id"], protocol="icmp", icmptype=8, icmpcode=0))
    assert error(alice, "createFirewallRule", ipaddressid=ip["id"], protocol="icmp", icmptype=-1).status == 537
    assert error(alice, "createFirewallRule", ipaddressid=ip["id"], protocol="udp", startport=1,
                 icmptype=3).status == 431
    egress = alice.wait(alice("createEgressFirewallRule", networkid=network["id"], protocol="udp", startport=53))
    assert egress["firewallrule"]["cidrlist"] == "10.1.1.0/24"
    assert error(alice, "createEgressFirewallRule", networkid=network["id"], protocol="udp", startport=53).status == 537
    exc = error(alice, "createEgressFirewallRule", networkid=network["id"], protocol="tcp", cidrlist="10.9.0.0/16")
    assert exc.status == 431 and "cidrlist" in exc.body["errortext"]
    assert len(alice("listFirewallRules", ipaddressid=ip["id"])["firewallrule"]) == 3
    assert alice("listEgressFirewallRules", networkid=network["id"])["count"] == 1


def test_rules_on_another_accounts_address_or_vm_are_refused(alice, mallory, cloud, zone, rules_world):
    network, vm, ip = rules_world
    theirs = network_of(mallory, zone, "theirs")
    their_vm = stopped_vm(mallory, cloud, zone, theirs, "evil")
    calls = [
        ("createPortForwardingRule", dict(ipaddressid=ip["id"], protocol="tcp", publicport=80, privateport=80,
                                          virtualmachineid=their_vm["id"])),
        ("createFirewallRule", dict(ipaddressid=ip["id"], protocol="tcp", startport=80)),
        ("createLoadBalancerRule", dict(name="x", publicipid=ip["id"], publicport=80, privateport=80,
                                        algorithm="source")),
        ("enableStaticNat", dict(ipaddressid=ip["id"], virtualmachineid=their_vm["id"])),
        ("createRemoteAccessVpn", dict(publicipid=ip["id"])),
        ("createEgressFirewallRule", dict(networkid=network["id"], protocol="all")),
        ("restartNetwork", dict(id=network["id"])),
        ("deleteNetwork", dict(id=network["id"])),
    ]
    for command, args in calls:
        assert error(mallory, command, **args).status == 531, command
    # and alice cannot forward to mallory's VM (it is not on her network, and not hers)
    assert error(alice, "createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=80,
                 privateport=80, virtualmachineid=their_vm["id"]).status == 531
    assert mallory("listPortForwardingRules") == {} and mallory("listPublicIpAddresses") == {}


def test_static_nat_excludes_other_rules_and_the_source_nat_address(alice, cloud, zone, rules_world):
    network, vm, ip = rules_world
    assert alice("enableStaticNat", ipaddressid=ip["id"], virtualmachineid=vm["id"]) == {"success": True}
    cloud.jobs.join()
    exc = error(alice, "createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=80,
                privateport=80, virtualmachineid=vm["id"])
    assert exc.status == 537 and "static NAT" in exc.body["errortext"]
    second = alice.wait(alice("associateIpAddress", networkid=network["id"]))["ipaddress"]
    exc = error(alice, "enableStaticNat", ipaddressid=second["id"], virtualmachineid=vm["id"])
    assert exc.status == 537 and ip["ipaddress"] in exc.body["errortext"]
    assert alice("listIpForwardingRules") == {}, "static NAT alone makes no IP forwarding rule (as CloudStack)"
    alice.wait(alice("createIpForwardingRule", ipaddressid=ip["id"], protocol="tcp", startport=22))
    assert error(alice, "createIpForwardingRule", ipaddressid=ip["id"], protocol="tcp", startport=20,
                 endport=30).status == 537
    assert error(alice, "createIpForwardingRule", ipaddressid=second["id"], protocol="tcp",
                 startport=22).status == 431, "no static NAT on that address"
    assert alice("listIpForwardingRules")["count"] == 1
    alice.wait(alice("disableStaticNat", ipaddressid=ip["id"]))
    assert alice("listIpForwardingRules") == {}


def test_load_balancer_members_must_be_on_the_rules_network(alice, cloud, zone, rules_world):
    network, vm, ip = rules_world
    other_network = network_of(alice, zone, "other")
    stranger = stopped_vm(alice, cloud, zone, other_network, "stranger")
    lb = alice.wait(alice("createLoadBalancerRule", name="web", publicipid=ip["id"], publicport=80, privateport=8080,
                          algorithm="leastconn"))["loadbalancer"]
    assert error(alice, "createLoadBalancerRule", name="w2", publicipid=ip["id"], publicport=81, privateport=80,
                 algorithm="fastest").status == 431
    exc = error(alice, "assignToLoadBalancerRule", id=lb["id"], virtualmachineids=stranger["id"])
    assert exc.status == 431 and "no NIC on network" in exc.body["errortext"]
    alice.wait(alice("assignToLoadBalancerRule", id=lb["id"], virtualmachineids=vm["id"]))
    assert error(alice, "assignToLoadBalancerRule", id=lb["id"], virtualmachineids=vm["id"]).status == 431
    assert [m["id"] for m in alice("listLoadBalancerRuleInstances", id=lb["id"])["loadbalancerruleinstance"]] == [
        vm["id"]]
    assert alice("listLoadBalancerRules", publicipid=ip["id"])["loadbalancerrule"][0]["name"] == "web"
    assert error(alice, "createLBStickinessPolicy", lbruleid=lb["id"], methodname="Magic", name="m").status == 431


def test_vpn_ranges_must_not_overlap_the_guest_network(alice, rules_world):
    network, vm, ip = rules_world
    exc = error(alice, "createRemoteAccessVpn", publicipid=ip["id"], iprange="10.1.1.200-10.1.1.210")
    assert exc.status == 537 and "10.1.1.0/24" in exc.body["errortext"]
    assert error(alice, "createRemoteAccessVpn", publicipid=ip["id"], iprange="nonsense").status == 431
    vpn = alice.wait(alice("createRemoteAccessVpn", publicipid=ip["id"]))["remoteaccessvpn"]
    assert vpn["publicip"] == ip["ipaddress"] and vpn["state"] == "Running"
    assert error(alice, "createRemoteAccessVpn", publicipid=ip["id"]).status == 537
    assert alice.wait(alice("addVpnUser", username="u1", password="secret1"))["vpnuser"]["username"] == "u1"
    assert error(alice, "addVpnUser", username="u1", password="secret1").status == 431
    assert error(alice, "addVpnUser", username="bad name", password="secret1").status == 431


def test_concurrent_acquisitions_never_share_an_address(app, cloud, zone):
    import threading

    clients = [ApiClient.for_user(app, cloud, make_account(cloud, f"racer{i}")) for i in range(6)]
    networks = [network_of(client, zone, f"n{i}") for i, client in enumerate(clients)]
    got, failed = [], []
    barrier = threading.Barrier(len(clients))

    def race(client, network):
        barrier.wait()
        try:
            got.append(client.wait(client("associateIpAddress", networkid=network["id"]))["ipaddress"]["ipaddress"])
        except ApiError as exc:
            failed.append(exc.status)

    threads = [threading.Thread(target=race, args=pair) for pair in zip(clients, networks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(got) == ["198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13"]
    assert failed == [533, 533]

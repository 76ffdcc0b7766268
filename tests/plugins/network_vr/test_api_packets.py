"""The virtual router through the API, proven with real packets between namespaces.

Each test builds an Advanced zone (simulated hosts; the guests are namespaces on the guest
bridge carrying the NICs' MACs), a tenant, and what it needs; the ``world`` fixture stands
for the internet at 198.51.100.1.
"""

from __future__ import annotations

import pytest

from tests.helpers import ApiClient, make_account, offering_id

from .world import PUBLIC_GATEWAY, sh
from .zone import advanced_zone, network_row

pytestmark = pytest.mark.usefixtures("vr_host")


def deploy(cloud, tenant, zone, name, **kw):
    job = tenant("deployVirtualMachine", zoneid=zone.id, serviceofferingid=offering_id(cloud),
                 templateid=zone.template, name=name, **kw)
    return tenant.wait(job, timeout=60)["virtualmachine"]


def guest_of(world, cloud, vm, name=None):
    nic = vm["nic"][0]
    bridge = network_row(cloud, nic["networkid"])["bridge"]
    return world.guest(name or vm["name"], bridge, nic["macaddress"])


def test_a_vm_without_networkids_gets_the_default_network_lease_name_and_source_nat(vr_cloud, vr_app, vr_admin,
                                                                                    world):
    zone = advanced_zone(vr_cloud, vr_admin, world)
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, "alice"))
    vm = deploy(vr_cloud, tenant, zone, "web1")
    nic = vm["nic"][0]
    network = tenant("listNetworks", id=nic["networkid"])["network"][0]
    assert network["name"] == "alice-network" and network["type"] == "Isolated"
    assert network["state"] == "Implemented" and network["cidr"] == "10.1.1.0/24"
    assert nic["ipaddress"].startswith("10.1.1.") and nic["gateway"] == "10.1.1.1"

    guest = guest_of(world, vr_cloud, vm)
    lease = guest.dhcp()
    assert lease["ip"] == nic["ipaddress"] and lease["hostname"] == "web1"
    assert lease["router"] == "10.1.1.1" and lease["dns"] == "10.1.1.1"
    assert lease["domain"] == network["networkdomain"]
    answer = guest.run("busybox", "nslookup", f"web1.{network['networkdomain']}", "10.1.1.1").stdout
    assert nic["ipaddress"] in answer

    source_nat = tenant("listPublicIpAddresses", associatednetworkid=network["id"],
                        issourcenat=True)["publicipaddress"][0]
    assert source_nat["ipaddress"] == "198.51.100.10"
    # the internet sees the guest as the source-NAT address
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"
    # and nothing of the guest is reachable from the internet without a rule
    assert world.get(world.internet, f"http://{nic['ipaddress']}/", timeout=1) is None


def tenant_with_vm(vr_cloud, vr_app, vr_admin, world, account="bob", vm_name="web1", **zone_kw):
    zone = advanced_zone(vr_cloud, vr_admin, world, **zone_kw)
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, account))
    vm = deploy(vr_cloud, tenant, zone, vm_name)
    guest = guest_of(world, vr_cloud, vm)
    guest.dhcp()
    return zone, tenant, vm, guest


def test_port_forwarding_reaches_a_web_server_in_the_guest_and_the_firewall_decides_who(vr_cloud, vr_app, vr_admin,
                                                                                        world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    guest.serve_http(80)
    network_id = vm["nic"][0]["networkid"]
    ip = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    assert ip["ipaddress"] == "198.51.100.11" and ip["associatednetworkid"] == network_id
    url = f"http://{ip['ipaddress']}:8080/"
    assert world.get(world.internet, url, timeout=1) is None  # nothing forwarded yet

    # without openfirewall the rule forwards, but the (default-deny) firewall still drops
    rule = tenant.wait(tenant("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=8080,
                              privateport=80, virtualmachineid=vm["id"], openfirewall=False))["portforwardingrule"]
    assert rule["state"] == "Active" and rule["vmguestip"] == vm["nic"][0]["ipaddress"]
    assert world.get(world.internet, url, timeout=1) is None

    # a firewall rule for one source address lets only that one in
    fw = tenant.wait(tenant("createFirewallRule", ipaddressid=ip["id"], protocol="tcp", startport=8080,
                            endport=8080, cidrlist="198.51.100.200/32"))["firewallrule"]
    assert world.get(world.internet, url, source="198.51.100.200") == f"web1 198.51.100.200\n"
    assert world.get(world.internet, url, source=PUBLIC_GATEWAY, timeout=1) is None

    # deleting it closes the port again; a rule made with openfirewall (the default) opens its own
    tenant.wait(tenant("deleteFirewallRule", id=fw["id"]))
    assert world.get(world.internet, url, source="198.51.100.200", timeout=1) is None
    tenant.wait(tenant("deletePortForwardingRule", id=rule["id"]))
    opened = tenant.wait(tenant("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=8080,
                                privateport=80, virtualmachineid=vm["id"]))["portforwardingrule"]
    assert world.get(world.internet, url) == f"web1 {PUBLIC_GATEWAY}\n"
    listed = tenant("listFirewallRules", ipaddressid=ip["id"])["firewallrule"]
    assert [(r["protocol"], r["startport"], r["endport"]) for r in listed] == [("tcp", 8080, 8080)]
    assert tenant("listPortForwardingRules", ipaddressid=ip["id"])["portforwardingrule"] == [
        tenant("listPortForwardingRules", id=opened["id"])["portforwardingrule"][0]]

    # updatePortForwardingRule: the same rule (same id) now forwards to another private port
    guest.serve_http(8000)
    updated = tenant.wait(tenant("updatePortForwardingRule", id=opened["id"], privateport=8000))["portforwardingrule"]
    assert (updated["id"], updated["privateport"], updated["privateendport"], updated["state"]) == (
        opened["id"], "8000", "8000", "Active")
    assert world.get(world.internet, url) == f"web1 {PUBLIC_GATEWAY}\n"
    in_router = ["ip", "netns", "exec", vr_cloud.plugins.network["vr"].ex_names(network_id).namespace]
    table = sh(*in_router, "nft", "list", "map", "ip", "strato", "pf_port").stdout
    assert f"{vm['nic'][0]['ipaddress']} . 8000" in table and f"{vm['nic'][0]['ipaddress']} . 80 " not in table
    bad = tenant.raw("updatePortForwardingRule", id=opened["id"], privateport=8000, privateendport=8001)
    assert bad.status_code == 431, "the private range must be as long as the public one"

    # deleting the rule removes its firewall rule with it
    tenant.wait(tenant("deletePortForwardingRule", id=opened["id"]))
    assert world.get(world.internet, url, timeout=1) is None
    assert tenant("listFirewallRules", ipaddressid=ip["id"]) == {}


def test_egress_rules_block_what_they_name_under_the_default_allow_policy(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    network_id = vm["nic"][0]["networkid"]
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") is not None
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8001/") is not None
    rule = tenant.wait(tenant("createEgressFirewallRule", networkid=network_id, protocol="tcp", startport=8000,
                              endport=8000, destcidrlist=f"{PUBLIC_GATEWAY}/32"))["firewallrule"]
    assert rule["destcidrlist"] == f"{PUBLIC_GATEWAY}/32" and rule["cidrlist"] == "10.1.1.0/24"
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/", timeout=1) is None
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8001/") == "internet 198.51.100.10\n"
    assert [r["id"] for r in tenant("listEgressFirewallRules", networkid=network_id)["firewallrule"]] == [rule["id"]]
    tenant.wait(tenant("deleteEgressFirewallRule", id=rule["id"]))
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"


def test_egress_under_a_default_deny_offering_allows_only_what_a_rule_names(vr_cloud, vr_app, vr_admin, world):
    zone = advanced_zone(vr_cloud, vr_admin, world)
    offering = vr_admin("createNetworkOffering", name="deny-egress", guestiptype="Isolated", enable=True,
                        supportedservices="Dhcp,Dns,SourceNat,Firewall", egressdefaultpolicy=False)["networkoffering"]
    assert offering["egressdefaultpolicy"] is False and offering["state"] == "Enabled"
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, "carol"))
    network = tenant("createNetwork", name="locked", zoneid=zone.id, networkofferingid=offering["id"])["network"]
    assert network["state"] == "Allocated" and network["egressdefaultpolicy"] is False
    vm = deploy(vr_cloud, tenant, zone, "locked1", networkids=network["id"])
    guest = guest_of(world, vr_cloud, vm)
    guest.dhcp()
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/", timeout=1) is None
    tenant.wait(tenant("createEgressFirewallRule", networkid=network["id"], protocol="tcp", startport=8001,
                       endport=8001))
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8001/") == "internet 198.51.100.10\n"
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/", timeout=1) is None


def test_a_load_balancer_spreads_requests_over_two_guests_and_sticks_when_asked(vr_cloud, vr_app, vr_admin, world,
                                                                               tmp_path):
    zone, tenant, web1, guest1 = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    web2 = deploy(vr_cloud, tenant, zone, "web2")
    guest2 = guest_of(world, vr_cloud, web2)
    guest2.dhcp()
    guest1.serve_http(8080)
    guest2.serve_http(8080)
    ip = tenant.wait(tenant("associateIpAddress", networkid=web1["nic"][0]["networkid"]))["ipaddress"]
    lb = tenant.wait(tenant("createLoadBalancerRule", name="web", publicipid=ip["id"], publicport=80,
                            privateport=8080, algorithm="roundrobin"))["loadbalancer"]
    assert lb["state"] == "Active" and lb["algorithm"] == "roundrobin"
    tenant.wait(tenant("assignToLoadBalancerRule", id=lb["id"], virtualmachineids=f"{web1['id']},{web2['id']}"))
    members = tenant("listLoadBalancerRuleInstances", id=lb["id"])["loadbalancerruleinstance"]
    assert sorted(m["name"] for m in members) == ["web1", "web2"]
    url = f"http://{ip['ipaddress']}/"
    answers = [world.get(world.internet, url) for _ in range(6)]
    # haproxy connects from the router's guest address
    assert sorted(set(answers)) == ["web1 10.1.1.1\n", "web2 10.1.1.1\n"]

    # source: one client always lands on the same guest
    tenant.wait(tenant("updateLoadBalancerRule", id=lb["id"], algorithm="source"))
    assert len({world.get(world.internet, url) for _ in range(6)}) == 1

    # LbCookie stickiness: a client keeping the cookie stays on its guest under roundrobin
    tenant.wait(tenant("updateLoadBalancerRule", id=lb["id"], algorithm="roundrobin"))
    policy = tenant.wait(tenant("createLBStickinessPolicy", lbruleid=lb["id"], methodname="LbCookie", name="sticky",
                                **{"param[0].name": "cookie-name", "param[0].value": "SRVID"}))
    assert policy["stickinesspolicies"]["stickinesspolicy"][0]["methodname"] == "LbCookie"
    jar = tmp_path / "cookies"
    sticky = {world.get(world.internet, url, cookies=jar) for _ in range(6)}
    assert len(sticky) == 1 and "SRVID" in jar.read_text()

    # a member taken out gets no more requests
    tenant.wait(tenant("removeFromLoadBalancerRule", id=lb["id"], virtualmachineids=web2["id"]))
    assert {world.get(world.internet, url) for _ in range(4)} == {"web1 10.1.1.1\n"}
    tenant.wait(tenant("deleteLoadBalancerRule", id=lb["id"]))
    assert world.get(world.internet, url, timeout=1) is None


def test_static_nat_maps_an_address_to_a_guest_both_ways(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    guest.serve_http(80)
    ip = tenant.wait(tenant("associateIpAddress", networkid=vm["nic"][0]["networkid"]))["ipaddress"]
    assert tenant("enableStaticNat", ipaddressid=ip["id"], virtualmachineid=vm["id"]) == {"success": True}
    vr_cloud.jobs.join()  # the router follows right after the commit
    listed = tenant("listPublicIpAddresses", id=ip["id"])["publicipaddress"][0]
    assert listed["isstaticnat"] is True and listed["virtualmachineid"] == vm["id"]
    assert listed["vmipaddress"] == vm["nic"][0]["ipaddress"]
    assert world.get(world.internet, f"http://{ip['ipaddress']}/", timeout=1) is None, "no port is open yet"
    # an IP forwarding rule (openfirewall by default) opens its ports towards the static NAT VM
    rule = tenant.wait(tenant("createIpForwardingRule", ipaddressid=ip["id"], protocol="tcp",
                              startport=80))["ipforwardingrule"]
    assert (rule["ipaddress"], rule["protocol"], rule["startport"], rule["endport"], rule["virtualmachineid"],
            rule["state"]) == (ip["ipaddress"], "tcp", 80, 80, vm["id"], "Active")
    assert tenant("listIpForwardingRules", virtualmachineid=vm["id"])["ipforwardingrule"] == [rule]
    # in: the internet reaches the guest on the address, with its own source address kept
    assert world.get(world.internet, f"http://{ip['ipaddress']}/") == f"web1 {PUBLIC_GATEWAY}\n"
    # out: the guest leaves as the static NAT address, not the source NAT one
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == f"internet {ip['ipaddress']}\n"
    tenant.wait(tenant("deleteIpForwardingRule", id=rule["id"]))
    assert world.get(world.internet, f"http://{ip['ipaddress']}/", timeout=1) is None, "its opening went with it"
    assert tenant("listFirewallRules", ipaddressid=ip["id"]) == {}
    tenant.wait(tenant("createIpForwardingRule", ipaddressid=ip["id"], protocol="tcp", startport=80, endport=81))

    tenant.wait(tenant("disableStaticNat", ipaddressid=ip["id"]))
    assert tenant("listIpForwardingRules") == {}, "disabling static NAT removes its rules"
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"
    assert world.get(world.internet, f"http://{ip['ipaddress']}/", timeout=1) is None


def vpn_client(world, name: str, server: str, fingerprint: str, psk: str, username: str, password: str):
    """An OpenVPN client in the internet namespace; returns (process, tun device, log path)."""
    from plugins.network_vr.openvpn import tls_crypt_key

    key = world.tmp / f"{name}.key"
    key.write_text(tls_crypt_key(psk))
    credentials = world.tmp / f"{name}.pass"
    credentials.write_text(f"{username}\n{password}\n")
    log = world.tmp / f"{name}.log"
    device = f"tw{world.tag}{name}"[:15]
    config = world.tmp / f"{name}.conf"
    config.write_text("\n".join([
        "client", f"dev {device}", "dev-type tun", "proto udp", f"remote {server} 1194", "nobind",
        f"peer-fingerprint {fingerprint}", f"tls-crypt {key}", f"auth-user-pass {credentials}",
        "auth-retry none", "connect-retry-max 1", f"log {log}", "verb 3", ""]))
    process = world.spawn(world.internet, ["openvpn", "--config", str(config)])
    return process, device, log


def wait_for(predicate, timeout: float = 20, interval: float = 0.2):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def test_a_vpn_client_reaches_the_guest_network(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    guest.serve_http(80)
    network_id = vm["nic"][0]["networkid"]
    source_nat = tenant("listPublicIpAddresses", associatednetworkid=network_id,
                        issourcenat=True)["publicipaddress"][0]
    vpn = tenant.wait(tenant("createRemoteAccessVpn", publicipid=source_nat["id"]))["remoteaccessvpn"]
    assert vpn["state"] == "Running" and vpn["iprange"] == "10.1.2.1-10.1.2.8" and len(vpn["presharedkey"]) == 24
    listed = tenant("listRemoteAccessVpns", publicipid=source_nat["id"])["remoteaccessvpn"][0]
    fingerprint = listed["certificatefingerprint"]
    assert fingerprint and fingerprint.count(":") == 31
    user = tenant.wait(tenant("addVpnUser", username="roamer", password="on-the-road"))["vpnuser"]
    assert user["state"] == "Active"
    assert [u["username"] for u in tenant("listVpnUsers")["vpnuser"]] == ["roamer"]

    # a wrong password gets no tunnel
    _, bad_device, bad_log = vpn_client(world, "bad", source_nat["ipaddress"], fingerprint, vpn["presharedkey"],
                                        "roamer", "wrong-password")
    assert wait_for(lambda: "AUTH_FAILED" in bad_log.read_text() if bad_log.exists() else False)

    process, device, log = vpn_client(world, "vpn", source_nat["ipaddress"], fingerprint, vpn["presharedkey"],
                                      "roamer", "on-the-road")
    assert wait_for(lambda: log.exists() and "Initialization Sequence Completed" in log.read_text()), \
        log.read_text() if log.exists() else "no client log"
    address = world.get(world.internet, f"http://{vm['nic'][0]['ipaddress']}/")
    assert address is not None and address.startswith("web1 10.1.2."), address

    # the tunnel survives a rebuild of the router: same certificate, same key, from the database
    tenant.wait(tenant("restartNetwork", id=network_id, cleanup=True))
    assert tenant("listRemoteAccessVpns", publicipid=source_nat["id"])["remoteaccessvpn"][0][
        "certificatefingerprint"] == fingerprint

    # a removed user cannot log in again
    tenant.wait(tenant("removeVpnUser", username="roamer"))
    _, _, again_log = vpn_client(world, "again", source_nat["ipaddress"], fingerprint, vpn["presharedkey"],
                                 "roamer", "on-the-road")
    assert wait_for(lambda: "AUTH_FAILED" in again_log.read_text() if again_log.exists() else False)
    tenant.wait(tenant("deleteRemoteAccessVpn", publicipid=source_nat["id"]))
    assert tenant("listRemoteAccessVpns") == {}


def test_guests_reach_their_own_networks_forwarded_and_static_nat_addresses_hairpin(vr_cloud, vr_app, vr_admin,
                                                                                   world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    network_id = vm["nic"][0]["networkid"]
    guest.serve_http(80)
    other_vm = deploy(vr_cloud, tenant, zone, "web2")
    other = guest_of(world, vr_cloud, other_vm)
    other.dhcp()
    forwarded = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]["ipaddress"]
    tenant.wait(tenant("createPortForwardingRule", ipaddressid=tenant("listPublicIpAddresses", ipaddress=forwarded)[
        "publicipaddress"][0]["id"], protocol="tcp", publicport=8080, privateport=80, virtualmachineid=vm["id"]))
    natted = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    tenant("enableStaticNat", ipaddressid=natted["id"], virtualmachineid=vm["id"])
    vr_cloud.jobs.join()
    router_ip = "10.1.1.1"
    # another guest, and the target itself, through the port forward: answered via the router
    assert other.get(f"http://{forwarded}:8080/") == f"web1 {router_ip}\n"
    assert guest.get(f"http://{forwarded}:8080/") == f"web1 {router_ip}\n"
    # and through the static NAT address (all ports, as from outside)
    assert other.get(f"http://{natted['ipaddress']}/") == f"web1 {router_ip}\n"
    # the internet still sees the guests as before
    assert world.get(world.internet, f"http://{forwarded}:8080/") == f"web1 {PUBLIC_GATEWAY}\n"
    assert other.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"
    tenant.wait(tenant("disableStaticNat", ipaddressid=natted["id"]))
    assert other.get(f"http://{natted['ipaddress']}/", timeout=1) is None, "no hairpin without the static NAT"

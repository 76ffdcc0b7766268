"""A network's router over its life, through the API: failing to come up and being repaired,
refused changes that leave nothing behind, restarts and rebuilds that restore exactly what
the database says, stop/start/reboot, VLANs, shared and L2 networks, user data, deletion."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from tests.helpers import ApiClient, ApiError, make_account

from .test_api_packets import deploy, guest_of, tenant_with_vm
from .world import PUBLIC_GATEWAY, sh
from .zone import advanced_zone, network_row

pytestmark = pytest.mark.usefixtures("vr_host")


def router_names(cloud, network_id):
    return cloud.plugins.network["vr"].ex_names(network_id)


def namespaces() -> set[str]:
    return set(sh("ip", "netns", "list").stdout.split()[::1]) - {"(id:"}


def in_router(cloud, network_id, *args, check=True):
    return sh("ip", "netns", "exec", router_names(cloud, network_id).namespace, *args, check=check)


def nft_table(cloud, network_id) -> list[str]:
    """The router's table as sorted lines without handles (rules of a chain may come in any order)."""
    text = in_router(cloud, network_id, "nft", "list", "table", "ip", "strato").stdout
    return sorted(line.strip() for line in text.splitlines() if line.strip())


def test_a_router_that_cannot_come_up_leaves_nothing_and_a_restart_repairs_it(vr_cloud, vr_app, vr_admin, world):
    zone = advanced_zone(vr_cloud, vr_admin, world)
    public = next(t for t in vr_admin("listTrafficTypes", physicalnetworkid=zone.physical_network)["traffictype"]
                  if t["traffictype"] == "Public")
    vr_admin.wait(vr_admin("updateTrafficType", id=public["id"], kvmnetworklabel=f"tw{world.tag}gone"))
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, "dave"))
    before = namespaces()
    with pytest.raises(ApiError) as failed:
        deploy(vr_cloud, tenant, zone, "doomed")
    assert failed.value.status == 534 and f"tw{world.tag}gone" in failed.value.body["errortext"]
    network = tenant("listNetworks")["network"][0]
    assert network["state"] == "Error"
    router = vr_admin("listRouters", networkid=network["id"])["router"][0]
    assert router["state"] == "Error" and f"tw{world.tag}gone" in router["lasterror"]
    assert namespaces() == before, "a router that failed must leave no namespace"
    names = router_names(vr_cloud, network["id"])
    assert not sh("ip", "link", "show", names.guest_veth, check=False).returncode == 0
    vm = tenant("listVirtualMachines")["virtualmachine"][0]
    assert vm["state"] == "Error"

    vr_admin.wait(vr_admin("updateTrafficType", id=public["id"], kvmnetworklabel=world.public_bridge))
    assert tenant.wait(tenant("restartNetwork", id=network["id"])) == {"success": True}
    assert tenant("listNetworks", id=network["id"])["network"][0]["state"] == "Implemented"
    assert vr_admin("listRouters", id=router["id"])["router"][0]["state"] == "Running"
    web = deploy(vr_cloud, tenant, zone, "web1")
    guest = guest_of(world, vr_cloud, web)
    assert guest.dhcp()["hostname"] == "web1"
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"


def test_a_change_the_router_refuses_is_taken_back_whole(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    guest.serve_http(80)
    network_id = vm["nic"][0]["networkid"]
    ip = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    tenant.wait(tenant("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=8080,
                       privateport=80, virtualmachineid=vm["id"]))
    table = nft_table(vr_cloud, network_id)
    # something else holds the address's port 80 inside the router: haproxy cannot bind it
    squat = (f"import socket, time; s = socket.socket(); s.bind(('{ip['ipaddress']}', 80)); s.listen(); "
             "time.sleep(600)")
    squatter = subprocess.Popen(["ip", "netns", "exec", router_names(vr_cloud, network_id).namespace,
                                 sys.executable, "-c", squat], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        world.wait_listening(router_names(vr_cloud, network_id).namespace, f"{ip['ipaddress']}:80")
        with pytest.raises(ApiError) as refused:
            tenant.wait(tenant("createLoadBalancerRule", name="web", publicipid=ip["id"], publicport=80,
                               privateport=80, algorithm="roundrobin"))
        assert refused.value.status == 534 and "haproxy" in refused.value.body["errortext"]
    finally:
        squatter.kill()
        squatter.wait()
    assert tenant("listLoadBalancerRules") == {}
    assert [r["startport"] for r in tenant("listFirewallRules", ipaddressid=ip["id"])["firewallrule"]] == [8080]
    assert nft_table(vr_cloud, network_id) == table, "the refused rule's firewall opening must be gone"
    assert vr_admin("listRouters", networkid=network_id)["router"][0]["state"] == "Running"
    assert world.get(world.internet, f"http://{ip['ipaddress']}:8080/") == f"web1 {PUBLIC_GATEWAY}\n"


def test_restart_restores_what_the_database_says_and_cleanup_rebuilds(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    guest.serve_http(80)
    network_id = vm["nic"][0]["networkid"]
    ip = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    for port in range(9000, 9020):  # rules arrive one by one: the incremental path
        tenant.wait(tenant("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=port,
                           privateport=80, virtualmachineid=vm["id"]))
    incremental = nft_table(vr_cloud, network_id)
    assert sum("9019" in line for line in incremental) == 2  # its map element and its firewall rule

    # break the router behind Strato's back: a restart (no cleanup) puts it right
    in_router(vr_cloud, network_id, "nft", "flush", "table", "ip", "strato")
    state = vr_cloud.plugins.network["vr"].ex_router(network_id).state
    dnsmasq_pid = int((state / "dnsmasq.pid").read_text())
    sh("kill", str(dnsmasq_pid))
    assert world.get(world.internet, f"http://{ip['ipaddress']}:9005/", timeout=1) is None
    tenant.wait(tenant("restartNetwork", id=network_id))
    assert nft_table(vr_cloud, network_id) == incremental, "a full apply must equal the incremental result"
    assert world.get(world.internet, f"http://{ip['ipaddress']}:9005/") == f"web1 {PUBLIC_GATEWAY}\n"
    assert guest.dhcp()["ip"] == vm["nic"][0]["ipaddress"]

    # cleanup=true: a new namespace (a mark left in the old one is gone), the same configuration
    in_router(vr_cloud, network_id, "ip", "addr", "add", "127.0.0.77/8", "dev", "lo")
    tenant.wait(tenant("restartNetwork", id=network_id))
    assert "127.0.0.77" in in_router(vr_cloud, network_id, "ip", "addr", "show", "lo").stdout
    tenant.wait(tenant("restartNetwork", id=network_id, cleanup=True))
    assert "127.0.0.77" not in in_router(vr_cloud, network_id, "ip", "addr", "show", "lo").stdout
    assert int((state / "dnsmasq.pid").read_text()) != dnsmasq_pid
    assert nft_table(vr_cloud, network_id) == incremental
    assert world.get(world.internet, f"http://{ip['ipaddress']}:9019/") == f"web1 {PUBLIC_GATEWAY}\n"
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"


def test_stop_start_and_reboot_router(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    network_id = vm["nic"][0]["networkid"]
    router = vr_admin("listRouters", networkid=network_id)["router"][0]
    assert router["guestipaddress"] == "10.1.1.1" and router["publicip"] == "198.51.100.10"
    assert router["guestnetworkid"] == network_id and router["account"] == "bob"
    assert {n["traffictype"] for n in router["nic"]} == {"Guest", "Public"}
    with pytest.raises(ApiError) as denied:
        tenant("listRouters")
    assert denied.value.status == 432

    stopped = vr_admin.wait(vr_admin("stopRouter", id=router["id"]))["router"]
    assert stopped["state"] == "Stopped"
    assert router_names(vr_cloud, network_id).namespace not in namespaces()
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/", timeout=1) is None
    assert vr_admin.wait(vr_admin("startRouter", id=router["id"]))["router"]["state"] == "Running"
    assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "internet 198.51.100.10\n"
    assert vr_admin.wait(vr_admin("rebootRouter", id=router["id"]))["router"]["state"] == "Running"
    assert guest.dhcp()["hostname"] == "web1"
    # a stopped router comes back by itself when a VM of its network starts
    vr_admin.wait(vr_admin("stopRouter", id=router["id"]))
    deploy(vr_cloud, tenant, zone, "web2")
    assert vr_admin("listRouters", id=router["id"])["router"][0]["state"] == "Running"


def test_user_data_and_metadata_are_served_to_each_guest(vr_cloud, vr_app, vr_admin, world):
    zone = advanced_zone(vr_cloud, vr_admin, world)
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, "erin"))
    vm = deploy(vr_cloud, tenant, zone, "cloudy", userdata=base64.b64encode(b"#cloud-config\nhello: 1\n").decode())
    guest = guest_of(world, vr_cloud, vm)
    guest.dhcp()
    assert guest.get("http://10.1.1.1/latest/user-data") == "#cloud-config\nhello: 1\n"
    assert guest.get("http://10.1.1.1/latest/meta-data/local-hostname") == "cloudy"
    assert guest.get("http://10.1.1.1/latest/meta-data/instance-id") == vm["id"]
    assert guest.get("http://10.1.1.1/latest/meta-data/public-ipv4") == "198.51.100.10"
    # the internet does not get it
    assert world.get(world.internet, "http://198.51.100.10/latest/user-data", timeout=1) is None


def _uplinked_zone(vr_cloud, vr_admin, world, isolation: str):
    uplink, switch_port = world.uplink()
    zone = advanced_zone(vr_cloud, vr_admin, world, guest_vlans="300-301", guest_uplink=uplink,
                         isolation=isolation)
    return zone, uplink, switch_port, f"tw-{world.tag}-sw"


def _check_vlans_run_out(vr_admin, tenant, zone, second_vlan: str, vr_cloud) -> None:
    second = tenant("createNetwork", name="second", zoneid=zone.id, networkofferingid=_isolated(tenant))["network"]
    tenant.wait(tenant("restartNetwork", id=second["id"]))
    assert network_row(vr_cloud, second["id"])["vlan"] == second_vlan
    third = tenant("createNetwork", name="third", zoneid=zone.id, networkofferingid=_isolated(tenant))["network"]
    with pytest.raises(ApiError) as full:
        tenant.wait(tenant("restartNetwork", id=third["id"]))
    assert full.value.status == 533 and "VLAN" in full.value.body["errortext"]


def test_a_vxlan_network_reaches_a_guest_on_another_host_by_its_vni(vr_cloud, vr_app, vr_admin, world):
    zone, uplink, switch_port, switch = _uplinked_zone(vr_cloud, vr_admin, world, "VXLAN")
    # the uplinks carry the underlay: this host and the far one, on a /30 of their own
    sh("ip", "addr", "add", "198.18.0.1/30", "dev", uplink)
    sh("ip", "-n", switch, "addr", "add", "198.18.0.2/30", "dev", switch_port)
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, "frank"))
    vm = deploy(vr_cloud, tenant, zone, "overlay")
    network_id = vm["nic"][0]["networkid"]
    assert network_row(vr_cloud, network_id)["vlan"] == "300"
    assert vr_admin("listNetworks", id=network_id)["network"][0]["broadcasturi"] == "vxlan://300"
    names = router_names(vr_cloud, network_id)
    details = json.loads(sh("ip", "-d", "-j", "link", "show", names.vlan_link).stdout)[0]
    assert details["linkinfo"]["info_kind"] == "vxlan" and details["linkinfo"]["info_data"]["id"] == 300
    assert details["linkinfo"]["info_data"]["group"] == "239.0.1.44" and details["master"] == names.bridge
    # the far host's guest: a VXLAN device on VNI 300 with the NIC's MAC; on VNI 301 it would hear nothing
    sh("ip", "-n", switch, "link", "add", "vx301", "type", "vxlan", "id", "301", "dstport", "4789",
       "group", "239.0.1.45", "dev", switch_port, "ttl", "10")
    sh("ip", "-n", switch, "link", "set", "vx301", "address", vm["nic"][0]["macaddress"], "up")
    with pytest.raises(AssertionError, match="got no lease"):
        _udhcpc(world, switch, "vx301", timeout=6)
    sh("ip", "-n", switch, "link", "delete", "vx301")
    sh("ip", "-n", switch, "link", "add", "vx300", "type", "vxlan", "id", "300", "dstport", "4789",
       "group", "239.0.1.44", "dev", switch_port, "ttl", "10")
    sh("ip", "-n", switch, "link", "set", "vx300", "address", vm["nic"][0]["macaddress"], "up")
    lease = _udhcpc(world, switch, "vx300")
    assert lease["ip"] == vm["nic"][0]["ipaddress"] and lease["hostname"] == "overlay"
    _check_vlans_run_out(vr_admin, tenant, zone, "301", vr_cloud)


def _udhcpc(world, ns, dev, timeout: float = 15):
    from .world import Guest

    guest = Guest.__new__(Guest)
    guest.world, guest.name, guest.ns, guest.dev, guest.mac = world, "far", ns, dev, None
    return guest.dhcp(timeout=timeout)


def _offering(cloud):
    from tests.helpers import offering_id

    return offering_id(cloud)


def _isolated(client):
    return client("listNetworkOfferings", name="DefaultIsolatedNetworkOfferingWithSourceNatService")[
        "networkoffering"][0]["id"]


def test_a_shared_network_router_serves_dhcp_from_its_own_address(vr_cloud, vr_app, vr_admin, world):
    zone = advanced_zone(vr_cloud, vr_admin, world)
    shared = vr_admin("listNetworkOfferings", name="DefaultSharedNetworkOffering")["networkoffering"][0]["id"]
    network = vr_admin("createNetwork", name="shared1", zoneid=zone.id, networkofferingid=shared, vlan="untagged",
                       gateway="192.0.2.1", netmask="255.255.255.0", startip="192.0.2.10",
                       endip="192.0.2.20")["network"]
    tenant = ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, "gina"))
    vm = deploy(vr_cloud, tenant, zone, "onshared", networkids=network["id"])
    assert vm["nic"][0]["ipaddress"] == "192.0.2.10"
    router = vr_admin("listRouters", networkid=network["id"])["router"][0]
    assert router["guestipaddress"] == "192.0.2.20" and "publicip" not in router
    lease = guest_of(world, vr_cloud, vm).dhcp()
    assert lease["ip"] == "192.0.2.10" and lease["router"] == "192.0.2.1" and lease["dns"] == "192.0.2.20"


def test_deleting_a_network_removes_its_router_bridge_and_addresses(vr_cloud, vr_app, vr_admin, world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    network_id = vm["nic"][0]["networkid"]
    ip = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    tenant.wait(tenant("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=2222,
                       privateport=22, virtualmachineid=vm["id"]))
    with pytest.raises(ApiError) as busy:
        tenant.wait(tenant("deleteNetwork", id=network_id))
    assert busy.value.status == 536
    # expunging the VM removes its rules (and its lease)
    vr_admin.wait(vr_admin("destroyVirtualMachine", id=vm["id"], expunge=True))
    vr_cloud.jobs.join()
    assert tenant("listPortForwardingRules") == {}
    assert vm["nic"][0]["macaddress"] not in (vr_cloud.plugins.network["vr"].ex_router(network_id).state
                                              / "dhcp-hosts").read_text()
    names = router_names(vr_cloud, network_id)
    assert tenant.wait(tenant("deleteNetwork", id=network_id)) == {"success": True}
    assert names.namespace not in namespaces()
    assert sh("ip", "link", "show", names.bridge, check=False).returncode != 0
    free = vr_admin("listPublicIpAddresses", allocatedonly=False, state="Free")["publicipaddress"]
    assert {"198.51.100.10", "198.51.100.11"} <= {a["ipaddress"] for a in free}
    assert vr_admin("listRouters", listall=True) == {}


def test_a_live_migration_gets_the_networks_whole_spec_and_rebuilds_a_missing_bridge(vr_cloud, vr_app, vr_admin,
                                                                                      world):
    zone, tenant, vm, guest = tenant_with_vm(vr_cloud, vr_app, vr_admin, world)
    network_id = vm["nic"][0]["networkid"]
    names = router_names(vr_cloud, network_id)
    before = vr_admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["hostid"]
    sh("ip", "link", "del", names.bridge)  # as on a host that lost it: the short dict could only give up
    moved = vr_admin.wait(vr_admin("migrateVirtualMachine", virtualmachineid=vm["id"]), timeout=60)["virtualmachine"]
    assert moved["hostid"] != before and moved["state"] == "Running"
    on_bridge = sh("ip", "-o", "link", "show", "master", names.bridge).stdout
    assert names.guest_veth in on_bridge, "the router's guest side is on the rebuilt bridge"
    assert network_row(vr_cloud, network_id)["router"] == "Running"

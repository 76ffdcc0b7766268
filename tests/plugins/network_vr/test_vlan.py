"""802.1Q guest and public VLANs with real frames: networks leave this host tagged on one
trunk, and a switch of "another host" (an Open vSwitch bridge behind a veth cable) hands
each VLAN to its own access ports.

Tagging runs either way the router can do it (``[plugin.vr] vlan_backend``): ``kernel``
802.1Q devices, or ``ovs`` access ports of Open vSwitch's userspace datapath, which works
on kernels without 8021q (this machine's). The other host's switch is always OVS, so
everything here needs ovsdb-server and ovs-vswitchd (scripts/services/openvswitch.sh).
"""

from __future__ import annotations

import pytest

from tests.helpers import ApiClient, ApiError, make_account

from .conftest import skip_loudly
from .test_api_packets import deploy
from .world import PUBLIC_GATEWAY, ROUTER_PREFIX, TrunkCapture, ovs_running, sh
from .zone import advanced_zone, network_row

pytestmark = pytest.mark.usefixtures("vr_host")


@pytest.fixture
def backend(request, vr_host):
    """The ``vlan_backend`` of the test's cloud (parametrized indirectly)."""
    from plugins.network_vr import system

    if not ovs_running():
        skip_loudly("Open vSwitch is not running (install openvswitch-switch, start it with "
                    "scripts/services/openvswitch.sh): the VLAN tests need its userspace datapath")
    if request.param == "kernel" and not system.kernel_makes_vlans():
        skip_loudly("this kernel cannot make 802.1Q VLAN devices (ip link add ... type vlan: Unknown device "
                    "type); the ovs backend tags here instead")
    return request.param


@pytest.fixture
def vr_settings(vr_settings, backend):
    vr_settings.plugin_config["vr"] = {**vr_settings.plugin_config["vr"], "vlan_backend": backend}
    return vr_settings


def _isolated(client) -> str:
    return client("listNetworkOfferings", name="DefaultIsolatedNetworkOfferingWithSourceNatService")[
        "networkoffering"][0]["id"]


def _tenant(vr_app, vr_cloud, name):
    return ApiClient.for_user(vr_app, vr_cloud, make_account(vr_cloud, name))


@pytest.mark.parametrize("backend", ["ovs", "kernel"], indirect=True)
def test_vlan_networks_with_one_cidr_share_a_trunk_isolated_and_tagged(backend, vr_cloud, vr_app, vr_admin, world):
    uplink, far_end = world.wire()
    far = world.ovs_bridge("f", far_end)  # the other host's switch: the cable is its trunk port
    zone = advanced_zone(vr_cloud, vr_admin, world, guest_vlans="100,200", guest_uplink=uplink)
    alice, bob = _tenant(vr_app, vr_cloud, "alice"), _tenant(vr_app, vr_cloud, "bob")
    vm_a, vm_b = deploy(vr_cloud, alice, zone, "alpha"), deploy(vr_cloud, bob, zone, "beta")
    net_a, net_b = vm_a["nic"][0]["networkid"], vm_b["nic"][0]["networkid"]
    assert (network_row(vr_cloud, net_a)["vlan"], network_row(vr_cloud, net_b)["vlan"]) == ("100", "200")
    assert alice("listNetworks", id=net_a)["network"][0]["cidr"] == bob("listNetworks", id=net_b)["network"][0][
        "cidr"] == "10.1.1.0/24"
    assert vr_admin("listNetworks", id=net_a)["network"][0]["broadcasturi"] == "vlan://100"
    assert "vlan" not in alice("listNetworks", id=net_a)["network"][0], "users do not see the VLAN"
    element = vr_cloud.plugins.network["vr"]
    names_a, names_b = element.ex_names(net_a), element.ex_names(net_b)
    router_a, router_b = names_a.mac("guest"), names_b.mac("guest")

    # guests on the other host: each VM's NIC as an access port of its VLAN there
    far_a = world.guest("fara", far, vm_a["nic"][0]["macaddress"], vlan=100)
    far_b = world.guest("farb", far, vm_b["nic"][0]["macaddress"], vlan=200)
    with TrunkCapture(uplink) as trunk:
        lease_a, lease_b = far_a.dhcp(), far_b.dhcp()
    assert (lease_a["ip"], lease_a["hostname"]) == (vm_a["nic"][0]["ipaddress"], "alpha")
    assert (lease_b["ip"], lease_b["hostname"]) == (vm_b["nic"][0]["ipaddress"], "beta")
    # on the trunk every frame of a router carries its network's tag, and only that one
    assert trunk.vlans_from(router_a) == {100} and trunk.vlans_from(router_b) == {200}
    assert trunk.vlans_from(far_a.mac) == {100} and trunk.vlans_from(far_b.mac) == {200}

    # one gateway address, two routers: each VLAN reaches its own (and leaves by its source NAT)
    assert lease_a["router"] == lease_b["router"] == "10.1.1.1"
    assert far_a.neighbour_mac("10.1.1.1") == router_a and far_b.neighbour_mac("10.1.1.1") == router_b
    nat_a = alice("listPublicIpAddresses", associatednetworkid=net_a)["publicipaddress"][0]["ipaddress"]
    nat_b = bob("listPublicIpAddresses", associatednetworkid=net_b)["publicipaddress"][0]["ipaddress"]
    assert nat_a != nat_b
    assert far_a.get(f"http://{PUBLIC_GATEWAY}:8000/") == f"internet {nat_a}\n"
    assert far_b.get(f"http://{PUBLIC_GATEWAY}:8000/") == f"internet {nat_b}\n"
    # alpha's NIC on VLAN 200 is a stranger there: bob's router does not know it, alice's cannot hear it
    stray = world.guest("stray", far, vm_a["nic"][0]["macaddress"], vlan=200)
    with pytest.raises(AssertionError, match="got no lease"):
        stray.dhcp(timeout=4)

    if backend == "ovs":
        trunk_bridge = sh("ovs-vsctl", "port-to-br", uplink).stdout.strip()
        assert trunk_bridge.startswith(f"{ROUTER_PREFIX}k")
        ports = {p: sh("ovs-vsctl", "get", "Port", p, "tag").stdout.strip()
                 for p in sh("ovs-vsctl", "list-ports", trunk_bridge).stdout.split()}
        assert ports == {uplink: "[]", names_a.ovs_port: "100", names_b.ovs_port: "200"}
    # a rebuild (restart with cleanup) comes back on the same VLAN; nothing is added twice
    alice.wait(alice("restartNetwork", id=net_a, cleanup=True))
    assert far_a.dhcp()["ip"] == vm_a["nic"][0]["ipaddress"]
    if backend == "ovs":
        assert sorted(sh("ovs-vsctl", "list-ports", trunk_bridge).stdout.split()) == sorted(ports)
        # the network's teardown removes its own access port and nothing else
        element.ex_router(net_a).destroy()
        assert sorted(sh("ovs-vsctl", "list-ports", trunk_bridge).stdout.split()) == sorted(
            [uplink, names_b.ovs_port])
        assert far_b.dhcp()["ip"] == vm_b["nic"][0]["ipaddress"]
    # the range has two VLANs: a third network finds none
    third = alice("createNetwork", name="third", zoneid=zone.id, networkofferingid=_isolated(alice))["network"]
    with pytest.raises(ApiError) as full:
        alice.wait(alice("restartNetwork", id=third["id"]))
    assert full.value.status == 533 and "VLAN" in full.value.body["errortext"]


@pytest.mark.parametrize("backend", ["ovs"], indirect=True)
def test_a_tagged_public_range_leaves_on_its_vlan_of_an_ovs_public_bridge(backend, vr_cloud, vr_app, vr_admin, world):
    # the Public label names an OVS bridge here; its trunk leads to the upstream switch, where
    # the internet is on VLAN 300 and an impostor with the same gateway address on VLAN 301
    public_trunk, upstream_end = world.wire()
    public = world.ovs_bridge("o", public_trunk)
    upstream = world.ovs_bridge("u", upstream_end)
    world.internet_on(upstream, "inet300", "vlan300", vlan=300)
    world.internet_on(upstream, "inet301", "vlan301", vlan=301)
    zone = advanced_zone(vr_cloud, vr_admin, world, public_bridge=public, public_vlan="300")
    tenant = _tenant(vr_app, vr_cloud, "carol")
    vm = deploy(vr_cloud, tenant, zone, "web")
    network_id = vm["nic"][0]["networkid"]
    guest = world.guest("web", network_row(vr_cloud, network_id)["bridge"], vm["nic"][0]["macaddress"])
    guest.dhcp()
    names = vr_cloud.plugins.network["vr"].ex_names(network_id)
    assert sh("ovs-vsctl", "get", "Port", names.public_veth, "tag").stdout.strip() == "300"
    with TrunkCapture(public_trunk) as trunk:
        assert guest.get(f"http://{PUBLIC_GATEWAY}:8000/") == "vlan300 198.51.100.10\n"
    assert trunk.vlans_from(names.mac("public")) == {300}
    # the router's teardown takes its port off the public bridge, which stays
    vr_cloud.plugins.network["vr"].ex_router(network_id).destroy()
    assert sh("ovs-vsctl", "list-ports", public).stdout.split() == [public_trunk]


@pytest.mark.parametrize("backend", ["ovs"], indirect=True)
def test_the_ovs_backend_names_what_to_start_when_open_vswitch_is_not_running(backend, vr_cloud, vr_app, vr_admin,
                                                                              world, monkeypatch, tmp_path):
    from plugins.network_vr import ovs

    monkeypatch.setattr(ovs, "RUN_DIR", tmp_path / "no-ovs")  # as on a host where it was never started
    uplink, _ = world.wire()
    zone = advanced_zone(vr_cloud, vr_admin, world, guest_vlans="100", guest_uplink=uplink)
    tenant = _tenant(vr_app, vr_cloud, "dora")
    with pytest.raises(ApiError) as failed:
        deploy(vr_cloud, tenant, zone, "lonely")
    assert failed.value.status == 534
    assert "needs Open vSwitch" in failed.value.body["errortext"]
    assert "scripts/services/openvswitch.sh" in failed.value.body["errortext"]

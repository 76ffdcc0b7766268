"""Networking through the clients people use, unchanged, against a live Strato: the cs
library (an admin building a zone's physical network, as Ansible's cs_* modules call it)
and Apache Libcloud's CloudStack driver (a tenant's networks, addresses and rules).
No router has to run: the tenant's VM is created stopped."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
from cs import CloudStack
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState, Provider

from tests.core.factories import simulated_zone
from tests.helpers import make_account, user_keys


@pytest.fixture
def settings(settings, tmp_path):
    settings.plugins = {**settings.plugins, "network": ["vr"]}
    settings.plugin_config = {**settings.plugin_config, "vr": {"prefix": "t", "state_dir": str(tmp_path / "vr")}}
    return settings


@pytest.fixture
def zone(cloud):
    from core.model import Zone

    ids = simulated_zone(cloud)
    with cloud.db.transaction() as session:
        session.scalars(sa.select(Zone).where(Zone.uuid == ids["zone"])).one().network_type = "Advanced"
    return ids


def admin_client(live_server, cloud) -> CloudStack:
    key, secret = user_keys(cloud, "admin")
    # fetch_result: cs polls the async jobs itself, as its command line does (a short interval keeps this fast)
    return CloudStack(endpoint=live_server.url, key=key, secret=secret, fetch_result=True, poll_interval=0.05)


def test_cs_builds_a_physical_network_the_way_ansible_does(live_server, cloud, zone):
    api = admin_client(live_server, cloud)
    physical = api.createPhysicalNetwork(zoneid=zone["zone"], name="pn-cs", isolationmethods="VLAN",
                                         vlan="500-510")["physicalnetwork"]
    assert physical["state"] == "Disabled" and physical["vlan"] == "500-510"
    guest = api.addTrafficType(physicalnetworkid=physical["id"], traffictype="Guest",
                               kvmnetworklabel="cloudbr1")["traffictype"]
    assert guest["kvmnetworklabel"] == "cloudbr1"
    api.addTrafficType(physicalnetworkid=physical["id"], traffictype="Public", kvmnetworklabel="cloudbr0")
    provider = api.listNetworkServiceProviders(physicalnetworkid=physical["id"],
                                               name="VirtualRouter")["networkserviceprovider"][0]
    element = api.listVirtualRouterElements(nspid=provider["id"])["virtualrouterelement"][0]
    assert api.configureVirtualRouterElement(id=element["id"], enabled="true")["virtualrouterelement"]["enabled"]
    assert api.updateNetworkServiceProvider(id=provider["id"], state="Enabled")[
        "networkserviceprovider"]["state"] == "Enabled"
    assert api.updatePhysicalNetwork(id=physical["id"], state="Enabled")["physicalnetwork"]["state"] == "Enabled"
    ip_range = api.createVlanIpRange(zoneid=zone["zone"], forvirtualnetwork="true", vlan="untagged",
                                     gateway="198.51.100.1", netmask="255.255.255.0", startip="198.51.100.10",
                                     endip="198.51.100.19")["vlan"]
    assert ip_range["startip"] == "198.51.100.10"
    assert [t["traffictype"] for t in api.listTrafficTypes(physicalnetworkid=physical["id"])["traffictype"]] == [
        "Guest", "Public"]


def test_libcloud_manages_networks_addresses_and_rules(live_server, cloud, zone):
    admin = admin_client(live_server, cloud)
    physical = admin.createPhysicalNetwork(zoneid=zone["zone"], name="pn")["physicalnetwork"]
    admin.addTrafficType(physicalnetworkid=physical["id"], traffictype="Guest")
    admin.createVlanIpRange(zoneid=zone["zone"], forvirtualnetwork="true", gateway="198.51.100.1",
                            netmask="255.255.255.0", startip="198.51.100.10", endip="198.51.100.19")

    keys = user_keys(cloud, make_account(cloud, "lc"))
    url = urlparse(live_server.url)
    driver = get_driver(Provider.CLOUDSTACK)(key=keys[0], secret=keys[1], secure=False, host=url.hostname,
                                             port=url.port, path=url.path)
    driver.connection.poll_interval = 0.05  # libcloud polls async jobs every second by default
    offerings = {o.name: o for o in driver.ex_list_network_offerings()}
    isolated = offerings["DefaultIsolatedNetworkOfferingWithSourceNatService"]
    assert isolated.guest_ip_type == "Isolated"
    location = driver.list_locations()[0]
    network = driver.ex_create_network(display_text="libcloud net", name="lcnet", network_offering=isolated,
                                       location=location)
    assert network.name == "lcnet" and [n.id for n in driver.ex_list_networks()] == [network.id]

    size = next(s for s in driver.list_sizes() if s.name == "Small Instance")
    node = driver.create_node(name="lcvm", size=size, image=driver.list_images(location=location)[0],
                              location=location, networks=[network])
    assert node.state == NodeState.STOPPED  # libcloud's default startvm=false: no router needed

    address = driver.ex_allocate_public_ip(network_id=network.id)
    assert address.address == "198.51.100.10"
    assert [a.address for a in driver.ex_list_public_ips()] == ["198.51.100.10"]
    firewall = driver.ex_create_firewall_rule(address, "0.0.0.0/0", "tcp", start_port=22, end_port=22)
    assert [r.id for r in driver.ex_list_firewall_rules()] == [firewall.id]
    egress = driver.ex_create_egress_firewall_rule(network.id, "10.1.1.0/24", "udp", start_port=53, end_port=53)
    assert [r.id for r in driver.ex_list_egress_firewall_rules()] == [egress.id]
    rule = driver.ex_create_port_forwarding_rule(node, address, private_port=22, public_port=2222, protocol="tcp",
                                                 openfirewall=False)
    listed = driver.ex_list_port_forwarding_rules()
    assert [(r.id, r.public_port, r.private_port) for r in listed] == [(rule.id, "2222", "22")]
    assert driver.ex_delete_port_forwarding_rule(node, rule) is True
    assert driver.ex_delete_firewall_rule(firewall) is True
    assert driver.ex_delete_egress_firewall_rule(egress) is True
    assert driver.ex_release_public_ip(address) is True
    assert driver.ex_list_public_ips() == []
    assert driver.destroy_node(node) is True

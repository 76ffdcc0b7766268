"""The clients people already use, unchanged, against a live Strato: Apache Libcloud's
CloudStack driver, the cs library and the cs command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
from cs import CloudStack
from libcloud.compute.providers import get_driver
from libcloud.compute.types import NodeState, Provider

from tests.core.factories import simulated_zone
from tests.helpers import make_account, user_keys

CS = str(Path(sys.executable).with_name("cs"))


@pytest.fixture
def zone(cloud):
    return simulated_zone(cloud)


@pytest.fixture
def tenant_keys(cloud):
    return user_keys(cloud, make_account(cloud, "erin"))


def libcloud_driver(live_server, keys):
    url = urlparse(live_server.url)
    cls = get_driver(Provider.CLOUDSTACK)
    return cls(key=keys[0], secret=keys[1], secure=False, host=url.hostname, port=url.port, path=url.path)


def test_libcloud_full_node_lifecycle(live_server, zone, tenant_keys):
    driver = libcloud_driver(live_server, tenant_keys)
    locations = driver.list_locations()
    assert [loc.id for loc in locations] == [zone["zone"]]
    sizes = {size.name: size for size in driver.list_sizes()}
    assert sizes["Small Instance"].ram == 512
    images = driver.list_images(location=locations[0])
    assert [image.id for image in images] == [zone["template"]]

    # libcloud sends startvm=False unless told otherwise, and CloudStack then leaves the VM stopped
    parked = driver.create_node(name="parked", size=sizes["Small Instance"], image=images[0], location=locations[0])
    assert parked.state == NodeState.STOPPED
    assert driver.destroy_node(parked) is True
    node = driver.create_node(name="lc-node", size=sizes["Small Instance"], image=images[0], location=locations[0],
                              ex_start_vm=True)
    assert node.name == "lc-node" and node.state == NodeState.RUNNING
    assert node.private_ips and node.private_ips[0].startswith("10.0.0.")

    listed = [n for n in driver.list_nodes() if n.state != NodeState.TERMINATED]
    assert [(n.id, n.state) for n in listed] == [(node.id, NodeState.RUNNING)]
    assert driver.reboot_node(listed[0]) is True
    assert driver.destroy_node(listed[0]) is True
    assert {n.state for n in driver.list_nodes()} <= {NodeState.TERMINATED}, "destroyed VMs only"


def test_cs_library_get_and_post_with_and_without_v3(live_server, zone, tenant_keys, cloud):
    from tests.helpers import offering_id

    for method, expiration in (("get", 600), ("post", 600), ("get", -1), ("post", -1)):
        api = CloudStack(endpoint=live_server.url, key=tenant_keys[0], secret=tenant_keys[1], method=method,
                         expiration=expiration, job_timeout=60, poll_interval=0.1)
        zones = api.listZones()["zone"]
        assert zones[0]["id"] == zone["zone"]
    vm = api.deployVirtualMachine(zoneid=zone["zone"], serviceofferingid=offering_id(cloud),
                                  templateid=zone["template"], name="cs-vm", fetch_result=True)["virtualmachine"]
    assert vm["state"] == "Running"
    listed = api.listVirtualMachines(fetch_list=True)
    assert [v["name"] for v in listed] == ["cs-vm"]
    stopped = api.stopVirtualMachine(id=vm["id"], fetch_result=True)["virtualmachine"]
    assert stopped["state"] == "Stopped"


def test_cs_command_line(live_server, zone, tenant_keys):
    env = {**os.environ, "CLOUDSTACK_ENDPOINT": live_server.url, "CLOUDSTACK_KEY": tenant_keys[0],
           "CLOUDSTACK_SECRET": tenant_keys[1]}
    out = subprocess.run([CS, "listTemplates", "templatefilter=executable"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["template"][0]["id"] == zone["template"]
    bad = subprocess.run([CS, "stopVirtualMachine", "id=00000000-0000-0000-0000-000000000000"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "431" in (bad.stdout + bad.stderr)


def test_libcloud_lists_the_basic_zone_guest_network_with_its_offering(live_server, zone, tenant_keys):
    # the Basic zone's guest network comes with the first VM; libcloud then read networkofferingid (KeyError)
    driver = libcloud_driver(live_server, tenant_keys)
    size = next(s for s in driver.list_sizes() if s.name == "Small Instance")
    image, location = driver.list_images()[0], driver.list_locations()[0]
    driver.create_node(name="lc-basic", size=size, image=image, location=location)
    offerings = {o.name: o for o in driver.ex_list_network_offerings()}
    [network] = driver.ex_list_networks()
    assert network.networkofferingid == offerings["DefaultSharedNetworkOfferingWithSGService"].id
    assert network.zoneid == zone["zone"]
    assert network.extra["network_offering_name"] == "DefaultSharedNetworkOfferingWithSGService"
    assert network.extra["network_offeringdisplay_text"] == "Offering for Shared Security group enabled networks"
    assert network.extra["network_offering_availability"] == "Optional"


def test_a_basic_zone_network_made_without_an_offering_gets_it_at_start_up(cloud, zone):
    from core.model import Network, NetworkOffering, Zone
    from core.orchestration.network import default_network
    from core.orchestration.networking import seed_network_offerings

    with cloud.db.transaction() as session:  # as Strato made it before it had an offering
        network = default_network(session, session.scalars(sa.select(Zone).where(Zone.uuid == zone["zone"])).one())
        network.network_offering_id = None
    with cloud.db.transaction() as session:
        seed_network_offerings(session)  # what every start-up runs
    with cloud.db.transaction() as session:
        network = session.scalars(sa.select(Network)).one()
        assert session.get(NetworkOffering, network.network_offering_id).unique_name == \
            "DefaultSharedNetworkOfferingWithSGService"

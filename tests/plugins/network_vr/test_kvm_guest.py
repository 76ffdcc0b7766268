"""A real guest (the KVM plugin's test guest under QEMU) on a virtual-router network: deployed
through the API into an Advanced zone with no networkids, it boots on the router's guest
bridge and takes the lease the router serves for its NIC.

Needs what the KVM plugin's tests need (root, libvirtd, QEMU, the test guest template); its
fixtures skip, saying why, when this machine lacks them. One boot: tens of seconds under TCG.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from core.config import Settings
from tests.helpers import ApiClient
from tests.plugins.hypervisor_kvm.conftest import guest_template, libvirt_module, libvirtd, workdir  # noqa: F401
from tests.plugins.hypervisor_kvm.helpers import GUEST_READY, console_lines, wait_for_line
from tests.plugins.hypervisor_kvm.test_api_integration import (  # noqa: F401
    conn,
    dirs,
    domains_made,
    make_tenant,
    template_url,
)

from . import world as world_module
from .world import PUBLIC_GATEWAY

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("vr_host")]

BOOT_TIMEOUT = 180


@pytest.fixture
def vr_settings(tmp_path, database_url, dirs, libvirtd):  # noqa: F811 - the KVM fixtures above
    return Settings(data_dir=tmp_path / "data", database_url=database_url,
                    plugins={"hypervisors": ["kvm"], "storage": ["nfs"], "network": ["vr"], "api": []},
                    plugin_config={"kvm": {"domain_type": "qemu", "console_log_dir": str(dirs.consoles),
                                           "shutdown_timeout": 30},
                                   "vr": {"prefix": world_module.ROUTER_PREFIX, "state_dir": str(tmp_path / "vr")}})


def kvm_advanced_zone(admin, libvirtd, dirs, template_url, world) -> dict:  # noqa: F811
    zone = admin("createZone", name=f"vr-kvm-{world.tag}", networktype="Advanced", dns1="127.0.0.1",
                 internaldns1="127.0.0.1")["zone"]
    pod = admin("createPod", zoneid=zone["id"], name="pod1", gateway="10.252.0.1", netmask="255.255.255.0",
                startip="10.252.0.10", endip="10.252.0.20")["pod"]
    cluster = admin("addCluster", zoneid=zone["id"], podid=pod["id"], clustername="kvm1", hypervisor="KVM",
                    clustertype="CloudManaged")["cluster"][0]
    admin("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=libvirtd, hypervisor="KVM",
          username="root", password="unused")
    admin("createStoragePool", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], name="primary1",
          url=f"file://{dirs.pool}", scope="CLUSTER")
    admin("addImageStore", name="store1", url=f"file://{dirs.store}", provider="NFS", zoneid=zone["id"])
    physical = admin.wait(admin("createPhysicalNetwork", zoneid=zone["id"], name="pn1"))["physicalnetwork"]
    admin.wait(admin("addTrafficType", physicalnetworkid=physical["id"], traffictype="Guest"))
    admin.wait(admin("addTrafficType", physicalnetworkid=physical["id"], traffictype="Public",
                     kvmnetworklabel=world.public_bridge))
    admin("createVlanIpRange", zoneid=zone["id"], forvirtualnetwork=True, gateway=PUBLIC_GATEWAY,
          netmask="255.255.255.0", startip="198.51.100.10", endip="198.51.100.20")
    ostype = next(o for o in admin("listOsTypes")["ostype"] if o["description"] == "Other Linux (64-bit)")
    template = admin("registerTemplate", name="strato-test-guest", displaytext="strato test guest", url=template_url,
                     zoneid=zone["id"], format="QCOW2", hypervisor="KVM", ostypeid=ostype["id"], ispublic=True,
                     isfeatured=True)["template"][0]
    deadline = time.monotonic() + 120
    while not admin("listTemplates", templatefilter="all", id=template["id"])["template"][0]["isready"]:
        assert time.monotonic() < deadline, "the test guest template did not become ready"
        time.sleep(0.2)
    return {"zone": zone["id"], "template": template["id"]}


def test_a_kvm_guest_takes_its_lease_from_the_router(vr_cloud, vr_app, vr_admin, world, libvirtd, dirs,  # noqa: F811
                                                     template_url, domains_made):
    zone = kvm_advanced_zone(vr_admin, libvirtd, dirs, template_url, world)
    tenant: ApiClient = make_tenant(vr_app, vr_cloud)
    from tests.helpers import offering_id

    job = tenant("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering_id(vr_cloud),
                 templateid=zone["template"], name="kvmguest")
    vm = tenant.wait(job, timeout=180)["virtualmachine"]
    instance = vr_admin("listVirtualMachines", id=vm["id"])["virtualmachine"][0]["instancename"]
    domains_made.append(instance)
    nic = vm["nic"][0]
    network = tenant("listNetworks", id=nic["networkid"])["network"][0]
    assert network["state"] == "Implemented" and nic["ipaddress"].startswith("10.1.1.")
    log = Path(dirs.consoles) / f"{instance}.console.log"
    wait_for_line(log, GUEST_READY, timeout=BOOT_TIMEOUT)
    deadline = time.monotonic() + 60
    got = None
    while time.monotonic() < deadline and got is None:
        got = next((m.group(1) for line in console_lines(log) if (m := re.match(r"STRATO-GUEST-IP (\S+)", line))),
                   None)
        time.sleep(0.5)
    assert got is not None and got.split("/")[0] == nic["ipaddress"], console_lines(log)[-20:]
    leases = (vr_cloud.plugins.network["vr"].ex_router(nic["networkid"]).state / "dnsmasq.leases").read_text()
    assert nic["macaddress"] in leases and nic["ipaddress"] in leases
    tenant.wait(tenant("destroyVirtualMachine", id=vm["id"]), timeout=120)

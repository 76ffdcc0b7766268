"""``strato demo``: a small cloud with one running VM, built through the API itself.

Every step is the CloudStack command an admin would run, sent through the same
dispatch path as a remote client, so the demo doubles as an end-to-end check.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .inprocess import InProcessClient, user_keys

DEMO_ACCOUNT, DEMO_PASSWORD = "demo", "demo"


def reset_data_dir(data_dir: Path) -> None:
    """Remove the previous demo's database and simulator state (nothing else in the folder)."""
    for name in ("strato.db", "strato.db-wal", "strato.db-shm", "simulator.sqlite"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "storage", ignore_errors=True)


def build_demo(cloud, *, hypervisor: str = "simulator", console=None) -> dict:
    from .app import create_app

    say = console.print if console else (lambda *a, **k: None)
    app = create_app(cloud)
    admin = InProcessClient(app, *user_keys(cloud, "admin"))
    spec = _simulator_spec() if hypervisor == "simulator" else _kvm_spec(cloud)

    say("creating zone, pod, cluster and hosts ...")
    zone = admin("createZone", name=spec["zone"], networktype="Basic", dns1="127.0.0.1",
                 internaldns1="127.0.0.1")["zone"]
    pod = admin("createPod", zoneid=zone["id"], name="Pod 1", gateway=spec["gateway"], netmask=spec["netmask"],
                startip=spec["startip"], endip=spec["endip"])["pod"]
    cluster = admin("addCluster", zoneid=zone["id"], podid=pod["id"], clustername="Cluster 1",
                    hypervisor=spec["hypervisor"], clustertype="CloudManaged")["cluster"][0]
    for url in spec["hosts"]:
        admin("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=url,
              username="root", password="password", hypervisor=spec["hypervisor"])
    say("adding primary storage and an image store ...")
    admin("createStoragePool", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], name="Primary 1",
          url=spec["primary"], scope="CLUSTER")
    admin("addImageStore", name="Secondary 1", url=spec["secondary"], provider=spec["store_provider"],
          zoneid=zone["id"])
    say("registering the template ...")
    ostype = next(o for o in admin("listOsTypes")["ostype"] if o["description"] == "Other Linux (64-bit)")
    template = admin("registerTemplate", name=spec["template_name"], displaytext=spec["template_name"],
                     url=spec["template_url"], zoneid=zone["id"], format="QCOW2", hypervisor=spec["hypervisor"],
                     ostypeid=ostype["id"], ispublic=True, isfeatured=True, passwordenabled=False)["template"][0]
    _wait_ready(admin, template["id"], say)

    say(f"creating the tenant account {DEMO_ACCOUNT!r} and deploying its VM ...")
    admin("createAccount", account=DEMO_ACCOUNT, username=DEMO_ACCOUNT, password=DEMO_PASSWORD,
          email="demo@example.org", firstname="Demo", lastname="Tenant", accounttype=0)
    tenant_keys = user_keys(cloud, DEMO_ACCOUNT)
    tenant = InProcessClient(app, *tenant_keys)
    offering = next(o for o in tenant("listServiceOfferings")["serviceoffering"] if o["name"] == "Small Instance")
    job = tenant("deployVirtualMachine", zoneid=zone["id"], serviceofferingid=offering["id"],
                 templateid=template["id"], name="demo-vm-1", displayname="Demo VM 1")
    vm = tenant.wait(job, timeout=spec["deploy_timeout"])["virtualmachine"]
    admin_keys = user_keys(cloud, "admin")
    return {"zone": zone["name"], "account": DEMO_ACCOUNT, "vm_name": vm["name"], "vm_id": vm["id"],
            "vm_state": vm["state"], "vm_ip": vm["nic"][0].get("ipaddress", "-"),
            "api_key": tenant_keys[0], "secret_key": tenant_keys[1],
            "admin_api_key": admin_keys[0], "admin_secret_key": admin_keys[1]}


def _wait_ready(admin, template_id: str, say, timeout: float = 600) -> None:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        row = admin("listTemplates", templatefilter="all", id=template_id)["template"][0]
        if row["isready"]:
            return
        if row.get("status") != last:
            last = row.get("status")
            say(f"  template: {last}")
        if "error" in (last or "").lower() or "fail" in (last or "").lower():
            raise RuntimeError(f"template download failed: {last}")
        time.sleep(0.2)
    raise TimeoutError("the template did not become ready")


def _simulator_spec() -> dict:
    # Addresses here are only records: simulated guests send no packets.
    return {"zone": "Demo Zone", "hypervisor": "Simulator", "gateway": "10.1.1.1", "netmask": "255.255.255.0",
            "startip": "10.1.1.10", "endip": "10.1.1.250",
            "hosts": ["http://sim/c1/h1?cpus=8&mhz=2000&ram=16384", "http://sim/c1/h2?cpus=8&mhz=2000&ram=16384"],
            "primary": "sim://primary1?capacity=2048", "secondary": "sim://secondary1", "store_provider": "Simulator",
            "template_name": "Tiny Linux (simulated)", "template_url": "http://sim/templates/tiny-linux.qcow2",
            "deploy_timeout": 60}


def _kvm_spec(cloud) -> dict:
    from plugins.hypervisor_kvm.demo import kvm_demo_spec  # the KVM plugin knows how to set this machine up

    return kvm_demo_spec(cloud)

"""``strato demo``: a small cloud with one running VM, built through the API itself.

Every step is the CloudStack command an admin would run, sent through the same
dispatch path as a remote client, so the demo doubles as an end-to-end check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .inprocess import InProcessClient, user_keys

DEMO_ACCOUNT, DEMO_PASSWORD = "demo", "demo"


def reset_data_dir(data_dir: Path) -> None:
    """Remove the previous demo's database and simulator state (nothing else in the folder)."""
    for name in ("strato.db", "strato.db-wal", "strato.db-shm", "simulator.sqlite"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "storage", ignore_errors=True)


def existing_demo(cloud) -> dict | None:
    """The summary of a demo built earlier in this data dir (``--keep``), or None."""
    from sqlalchemy import select

    from core.model import Account, VirtualMachine, Zone

    with cloud.db.transaction() as session:
        account = session.scalar(select(Account).where(Account.name == DEMO_ACCOUNT, Account.removed.is_(None)))
        vm = account and session.scalar(select(VirtualMachine).where(
            VirtualMachine.account_id == account.id, VirtualMachine.removed.is_(None)).order_by(VirtualMachine.id))
        if vm is None:
            return None
        zone = session.get(Zone, vm.zone_id)
        summary = {"zone": zone.name, "account": DEMO_ACCOUNT, "vm_name": vm.name, "vm_id": vm.uuid,
                   "vm_state": vm.state, "vm_ip": vm.nics[0].ip_address if vm.nics else "-"}
    tenant, admin = user_keys(cloud, DEMO_ACCOUNT), user_keys(cloud, "admin")
    return {**summary, "api_key": tenant[0], "secret_key": tenant[1], "admin_api_key": admin[0],
            "admin_secret_key": admin[1]}


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
    if "after_deploy" in spec:
        spec["after_deploy"](cloud, vm, say)
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


# -- the KVM demo: this machine's libvirtd and QEMU ---------------------------------------------
# Everything is done here with the repository's scripts and virsh: the API never imports a plugin.

REPO = Path(__file__).resolve().parents[1]
GUEST_READY = "STRATO-GUEST-READY"
GUEST_BOOT_TIMEOUT = 180


def _kvm_spec(cloud) -> dict:
    """Prepare this machine for a KVM demo and describe it: libvirtd running, the test guest
    built (scripts/build-test-template.sh, cached in ~/.cache/strato), a file:// primary pool
    and image store under ``<data dir>/storage``, the guest registered by its file:// URL
    (the demo registers as the root admin). Domains a previous demo left behind with their
    disks in this data dir's pool are removed first. Raises ``ConfigurationError`` saying
    what to do when a piece is missing."""
    from core.errors import ConfigurationError

    data_dir = Path(cloud.settings.data_dir).absolute()
    _run_or_explain([str(REPO / "scripts/services/libvirtd.sh"), "60"], "libvirtd could not be started")
    storage = data_dir / "storage"
    pool, store = storage / "kvm-primary", storage / "kvm-secondary"
    _remove_orphan_domains(storage)
    for path in (storage, pool, store):
        path.mkdir(parents=True, exist_ok=True)
    pool.chmod(0o755)
    blocked = _not_traversable(pool)
    if blocked is not None:
        # QEMU runs as libvirt-qemu and opens the volumes in the pool itself
        raise ConfigurationError(f"QEMU (user libvirt-qemu) cannot reach {pool}: {blocked} is not searchable by "
                                 "others; use --data-dir under a world-searchable directory (e.g. "
                                 f"/var/tmp/strato-demo) or chmod o+x {blocked}")
    cache = Path(os.environ.get("STRATO_CACHE_DIR") or Path.home() / ".cache" / "strato")
    template = cache / "templates" / "strato-test-guest.qcow2"
    template.parent.mkdir(parents=True, exist_ok=True)
    _run_or_explain(["bash", str(REPO / "scripts/build-test-template.sh"), str(template)],
                    "the test guest could not be built")
    return {"zone": "Demo KVM Zone", "hypervisor": "KVM", "gateway": "10.1.2.1", "netmask": "255.255.255.0",
            "startip": "10.1.2.10", "endip": "10.1.2.250", "hosts": ["qemu:///system"],
            "primary": f"file://{pool}", "secondary": f"file://{store}", "store_provider": "NFS",
            "template_name": "Strato test guest (KVM)", "template_url": template.as_uri(),
            "deploy_timeout": 300, "after_deploy": _wait_for_guest}


def _run_or_explain(cmd: list[str], what: str) -> None:
    from core.errors import ConfigurationError

    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"{what}: {exc}") from None
    if done.returncode != 0:
        raise ConfigurationError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")


def _not_traversable(path: Path) -> Path | None:
    """The first directory above ``path`` that other users cannot enter, if any."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            return parent
    return None


def _virsh(*args: str) -> str:
    done = subprocess.run(["virsh", "-q", "-c", "qemu:///system", *args], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        from core.errors import ConfigurationError

        raise ConfigurationError(f"virsh {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _remove_orphan_domains(storage: Path) -> None:
    """Domains whose disks were in ``storage`` but are gone (a fresh demo wiped them): a
    previous demo's VMs, which would otherwise take the names the new demo's VMs get."""
    import xml.etree.ElementTree as ET

    for uuid in _virsh("list", "--all", "--uuid").split():
        sources = [disk.get("file") for disk in ET.fromstring(_virsh("dumpxml", uuid)).iter("source")
                   if disk.get("file")]
        ours = [Path(s) for s in sources if Path(s).is_relative_to(storage)]
        if ours and not any(s.exists() for s in ours):
            if uuid in _virsh("list", "--uuid").split():
                _virsh("destroy", uuid)
            _virsh("undefine", uuid, "--snapshots-metadata")


def _wait_for_guest(cloud, vm: dict, say) -> None:
    """Wait for the guest's marker on its serial console, then say how to watch the console."""
    from sqlalchemy import select

    from core.model import VirtualMachine

    with cloud.db.transaction() as session:
        row = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm["id"]))
        instance, log = row.instance_name, Path(row.details["console_log"])
    say(f"  {instance} is booting under QEMU; waiting for {GUEST_READY} on its serial console ...")
    deadline = time.monotonic() + GUEST_BOOT_TIMEOUT
    while not (log.exists() and GUEST_READY in log.read_text(errors="replace")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the guest did not print {GUEST_READY} within {GUEST_BOOT_TIMEOUT} s; see {log}")
        time.sleep(0.5)
    say(f"  the guest is up. Its console: [bold]virsh -c qemu:///system console {instance}[/] "
        f"(Ctrl-] leaves), or its log: [bold]tail -f {log}[/]")

"""``strato demo``: a small cloud with one running VM, built through the API itself.

Every step is the CloudStack command an admin would run, sent through the same
dispatch path as a remote client, so the demo doubles as an end-to-end check.

What a demo leaves on the machine (KVM domains, routers' namespaces and bridges, the
public bridge it made) is removed by the next fresh demo in the same data dir, or by
``strato demo --clean``; never anything another data dir's demo (or anyone else) made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .inprocess import InProcessClient, user_keys

DEMO_ACCOUNT, DEMO_PASSWORD = "demo", "demo"
#: the first line of the strato.toml a demo writes into its data dir (a file without it is the user's)
CONFIG_HEADER = "# written by `strato demo`: what this demo enabled, so `strato --data-dir <this dir> serve` matches"
#: the vr demo's public side: a bridge on this host holding the public range's gateway address
#: (documentation range, RFC 5737), so the host reaches the routers' public addresses
PUBLIC_BRIDGE, PUBLIC_GATEWAY, PUBLIC_PREFIX = "strato-pub0", "198.51.100.1", 24
PUBLIC_START, PUBLIC_END = "198.51.100.10", "198.51.100.50"
#: names the public bridge when this data dir's demo made it (so only then does cleaning remove it)
BRIDGE_MARKER = "demo-public-bridge"


def demo_plugins(hypervisor: str, network: str | None) -> dict[str, list[str]]:
    """The plugins a demo of this kind enables, every kind named (a stale file must not add any)."""
    kvm = hypervisor == "kvm"
    return {"hypervisors": ["kvm"] if kvm else ["simulator"], "storage": ["nfs"] if kvm else ["simulator"],
            "network": ["vr"] if network == "vr" else [], "api": ["simulator"]}


def config_is_ours(data_dir: Path) -> bool:
    """The data dir has no strato.toml, or one a demo wrote (which a demo may replace)."""
    path = data_dir / "strato.toml"
    return not path.exists() or path.read_text().startswith(CONFIG_HEADER)


def write_config(settings) -> Path:
    """``<data dir>/strato.toml`` with the demo's plugins and address (and the ``[plugin.*]``
    sections the last one had): the config lookup reads it, so ``strato --data-dir <dir> serve``
    loads what the demo loaded. Values are strings, numbers, booleans or lists of them (JSON's
    spelling of those is TOML's)."""
    path = Path(settings.data_dir) / "strato.toml"
    lines = [CONFIG_HEADER, "", "[server]", f"host = {json.dumps(settings.api_host)}",
             f"port = {settings.api_port}", "", "[plugins]"]
    lines += [f"{kind} = {json.dumps(names)}" for kind, names in settings.plugins.items()]
    for name, section in settings.plugin_config.items():  # kept from the last demo's file (the user's edits)
        lines += ["", f"[plugin.{name}]", *(f"{key} = {json.dumps(value)}" for key, value in section.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def instance_name_for(data_dir: Path) -> str:
    """The global setting ``instance.name`` of a KVM demo in ``data_dir``: the same for the same
    directory, different for two, so two demos on one libvirtd never take each other's domain names."""
    return "D" + hashlib.sha256(str(Path(data_dir).absolute()).encode()).hexdigest()[:6]


def reset_data_dir(data_dir: Path) -> None:
    """Remove the previous demo's database and simulator state (nothing else in the folder)."""
    for name in ("strato.db", "strato.db-wal", "strato.db-shm", "simulator.sqlite"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "storage", ignore_errors=True)


def clean_machine(data_dir: Path, settings) -> list[str]:
    """Remove from this machine what the demo of ``data_dir`` left running: its KVM domains
    (disks in ``<data dir>/storage``), its routers (one state folder each under
    ``<data dir>/network_vr``: namespace, bridges, daemons) and the public bridge when this demo
    made it and nothing is attached to it any more. What it removed, as lines to print."""
    data_dir = Path(data_dir).absolute()
    done = []
    primary = data_dir / "storage" / "kvm-primary"
    if primary.exists() and shutil.which("virsh"):
        _run_or_explain([str(REPO / "scripts/services/libvirtd.sh"), "60"], "libvirtd could not be started")
        done += [f"KVM domain {name}" for name in _remove_orphan_domains(data_dir / "storage", only_orphans=False)]
    routers = data_dir / "network_vr"
    uuids = sorted(p.name for p in routers.iterdir() if p.is_dir() and _is_uuid(p.name)) if routers.is_dir() else []
    if uuids:
        done += [f"router of network {uuid}" for uuid in _remove_routers(settings, uuids)]
    marker = data_dir / BRIDGE_MARKER
    if marker.exists():
        bridge = marker.read_text().strip()
        ports = Path(f"/sys/class/net/{bridge}/brif")
        if ports.is_dir() and not any(ports.iterdir()):
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
            done.append(f"bridge {bridge}")
        if not ports.is_dir():  # gone, now or earlier: nothing of this demo's is left on it
            marker.unlink()
    return done


def _is_uuid(name: str) -> bool:
    import uuid

    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def _remove_routers(settings, uuids: list[str]) -> list[str]:
    """Shut the networks' routers down through the vr plugin's contract (``shutdown_network``
    needs only the uuid), loaded for this alone: the routers' names and files are its business."""
    import dataclasses

    from core.plugins import PluginManager

    only_vr = dataclasses.replace(settings, plugins={"hypervisors": [], "storage": [], "network": ["vr"], "api": []},
                                  plugin_config={"vr": settings.for_plugin("vr")})
    manager = PluginManager(only_vr).load()
    try:
        for uuid in uuids:
            manager.network["vr"].shutdown_network({"uuid": uuid})
    finally:
        manager.close()
    return uuids


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
    summary.update(api_key=tenant[0], secret_key=tenant[1], admin_api_key=admin[0], admin_secret_key=admin[1],
                   hypervisor="kvm" if "kvm" in cloud.plugins.hypervisors else "simulator")
    if zone.network_type == "Advanced" and "vr" in cloud.plugins.network:
        from .app import create_app

        app = create_app(cloud)
        summary["network"] = network_summary(cloud, InProcessClient(app, *admin), InProcessClient(app, *tenant),
                                             summary["vm_id"])
    return summary


def build_demo(cloud, *, hypervisor: str = "simulator", network: str | None = None, console=None) -> dict:
    from .app import create_app

    say = console.print if console else (lambda *a, **k: None)
    app = create_app(cloud)
    admin = InProcessClient(app, *user_keys(cloud, "admin"))
    spec = _simulator_spec() if hypervisor == "simulator" else _kvm_spec(cloud)
    if network == "vr":
        _ensure_public_bridge(Path(cloud.settings.data_dir).absolute(), say)

    say("creating zone, pod, cluster and hosts ...")
    zone = admin("createZone", name=spec["zone"], networktype="Advanced" if network else "Basic", dns1="127.0.0.1",
                 internaldns1="127.0.0.1")["zone"]
    pod = admin("createPod", zoneid=zone["id"], name="Pod 1", gateway=spec["gateway"], netmask=spec["netmask"],
                startip=spec["startip"], endip=spec["endip"])["pod"]
    cluster = admin("addCluster", zoneid=zone["id"], podid=pod["id"], clustername="Cluster 1",
                    hypervisor=spec["hypervisor"], clustertype="CloudManaged")["cluster"][0]
    for url in spec["hosts"]:
        admin("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url=url,
              username="root", password="password", hypervisor=spec["hypervisor"])
    if network == "vr":
        say(f"adding the physical network (Guest, and Public on bridge {PUBLIC_BRIDGE}) and the public range ...")
        physical = admin.wait(admin("createPhysicalNetwork", zoneid=zone["id"], name="Physical 1"))["physicalnetwork"]
        admin.wait(admin("addTrafficType", physicalnetworkid=physical["id"], traffictype="Guest"))
        admin.wait(admin("addTrafficType", physicalnetworkid=physical["id"], traffictype="Public",
                         kvmnetworklabel=PUBLIC_BRIDGE))
        admin.wait(admin("updatePhysicalNetwork", id=physical["id"], state="Enabled"))
        admin("createVlanIpRange", zoneid=zone["id"], forvirtualnetwork=True, vlan="untagged",
              gateway=PUBLIC_GATEWAY, netmask="255.255.255.0", startip=PUBLIC_START, endip=PUBLIC_END)
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
    if hypervisor == "kvm":
        # instance names are i-<account>-<vm>-<instance.name>: make them this data dir's own
        admin("updateConfiguration", name="instance.name", value=instance_name_for(cloud.settings.data_dir))

    say(f"creating the tenant account {DEMO_ACCOUNT!r} and deploying its VM"
        + (" into its default isolated network (and its router) ..." if network else " ..."))
    admin("createAccount", account=DEMO_ACCOUNT, username=DEMO_ACCOUNT, password=DEMO_PASSWORD,
          email="demo@example.org", firstname="Demo", lastname="Tenant", accounttype=0)
    tenant_keys = user_keys(cloud, DEMO_ACCOUNT)
    tenant = InProcessClient(app, *tenant_keys)
    offering = next(o for o in tenant("listServiceOfferings")["serviceoffering"] if o["name"] == "Small Instance")
    job = tenant("deployVirtualMachine", zoneid=zone["id"], serviceofferingid=offering["id"],
                 templateid=template["id"], name="demo-vm-1", displayname="Demo VM 1")
    vm = tenant.wait(job, timeout=spec["deploy_timeout"])["virtualmachine"]
    if "after_deploy" in spec:
        spec["after_deploy"](cloud, vm, say, lease=network == "vr")
    admin_keys = user_keys(cloud, "admin")
    summary = {"zone": zone["name"], "account": DEMO_ACCOUNT, "vm_name": vm["name"], "vm_id": vm["id"],
               "vm_state": vm["state"], "vm_ip": vm["nic"][0].get("ipaddress", "-"), "hypervisor": hypervisor,
               "api_key": tenant_keys[0], "secret_key": tenant_keys[1],
               "admin_api_key": admin_keys[0], "admin_secret_key": admin_keys[1]}
    if network == "vr":
        summary["network"] = network_summary(cloud, admin, tenant, vm["id"])
    return summary


def network_summary(cloud, admin, tenant, vm_id: str) -> dict:
    """What the vr demo prints: the VM's network, its router (namespace, source-NAT address)
    and where dnsmasq keeps its leases."""
    vm = tenant("listVirtualMachines", id=vm_id)["virtualmachine"][0]
    network_id = vm["nic"][0]["networkid"]
    network = tenant("listNetworks", id=network_id)["network"][0]
    router = admin("listRouters", networkid=network_id, listall=True)["router"][0]
    source_nat = next(a for a in tenant("listPublicIpAddresses", associatednetworkid=network_id)["publicipaddress"]
                      if a["issourcenat"])
    state = Path(cloud.settings.data_dir).absolute() / "network_vr" / network_id
    return {"network_id": network_id, "network_name": network["name"], "cidr": network.get("cidr"),
            "router_state": router["state"], "router_ip": router.get("guestipaddress"),
            "namespace": _router_details(cloud, network_id).get("namespace"),
            "source_nat": source_nat["ipaddress"], "source_nat_id": source_nat["id"],
            "leases": str(state / "dnsmasq.leases"), "public_bridge": PUBLIC_BRIDGE,
            "public_gateway": PUBLIC_GATEWAY}


def _router_details(cloud, network_uuid: str) -> dict:
    """What the network plugin reported when it last applied the network's router (namespace, bridge)."""
    from sqlalchemy import select

    from core.model import Network, Router

    with cloud.db.transaction() as session:
        network = session.scalar(select(Network).where(Network.uuid == network_uuid))
        router = session.scalar(select(Router).where(Router.network_id == network.id))
        return dict(router.details or {}) if router else {}


def _ensure_public_bridge(data_dir: Path, say) -> None:
    """The Public traffic label's bridge, with the public gateway's address on this host, made
    when missing (and then noted in the data dir, so cleaning this demo removes it)."""
    from core.errors import ConfigurationError

    if os.geteuid() != 0:
        raise ConfigurationError("--network vr needs root: routers are network namespaces with bridges and nftables")

    def ip(*args: str) -> None:
        _run_or_explain(["ip", *args], f"making the public bridge {PUBLIC_BRIDGE}")

    if not Path(f"/sys/class/net/{PUBLIC_BRIDGE}").exists():
        say(f"making the public bridge {PUBLIC_BRIDGE} ({PUBLIC_GATEWAY}/{PUBLIC_PREFIX} on this host) ...")
        ip("link", "add", PUBLIC_BRIDGE, "type", "bridge", "forward_delay", "0", "stp_state", "0")
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / BRIDGE_MARKER).write_text(PUBLIC_BRIDGE + "\n")
    addresses = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", PUBLIC_BRIDGE], capture_output=True,
                               text=True).stdout
    if f" {PUBLIC_GATEWAY}/" not in addresses:
        ip("addr", "add", f"{PUBLIC_GATEWAY}/{PUBLIC_PREFIX}", "dev", PUBLIC_BRIDGE)
    ip("link", "set", PUBLIC_BRIDGE, "up")


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
GUEST_LEASE, GUEST_LEASE_TIMEOUT = "STRATO-GUEST-IP", 60


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


def _remove_orphan_domains(storage: Path, only_orphans: bool = True) -> list[str]:
    """Remove the domains whose disks are in ``storage`` and are gone (a fresh demo wiped
    them): a previous demo's VMs, which would otherwise take the names the new demo's VMs get.
    ``only_orphans=False`` (cleaning) removes them whether their disks are there or not.
    Returns their names."""
    import xml.etree.ElementTree as ET

    removed = []
    for uuid in _virsh("list", "--all", "--uuid").split():
        definition = ET.fromstring(_virsh("dumpxml", uuid))
        sources = [disk.get("file") for disk in definition.iter("source") if disk.get("file")]
        ours = [Path(s) for s in sources if Path(s).is_relative_to(storage)]
        if ours and not (only_orphans and any(s.exists() for s in ours)):
            if uuid in _virsh("list", "--uuid").split():
                _virsh("destroy", uuid)
            _virsh("undefine", uuid, "--snapshots-metadata")
            removed.append(definition.findtext("name"))
    return removed


def _wait_for_guest(cloud, vm: dict, say, lease: bool = False) -> None:
    """Wait for the guest's marker on its serial console (and, on a router's network, for the
    address it took by DHCP), then say how to watch the console."""
    from sqlalchemy import select

    from core.model import VirtualMachine

    with cloud.db.transaction() as session:
        row = session.scalar(select(VirtualMachine).where(VirtualMachine.uuid == vm["id"]))
        instance, log = row.instance_name, Path(row.details["console_log"])
    say(f"  {instance} is booting under QEMU; waiting for {GUEST_READY} on its serial console ...")
    _wait_for_console(log, GUEST_READY, GUEST_BOOT_TIMEOUT)
    if lease:
        say("  waiting for the guest's DHCP lease from the router's dnsmasq ...")
        line = _wait_for_console(log, GUEST_LEASE, GUEST_LEASE_TIMEOUT)
        say(f"  the guest took {line.split()[-1]} by DHCP from the router")
    say(f"  the guest is up. Its console: [bold]virsh -c qemu:///system console {instance}[/] "
        f"(Ctrl-] leaves), or its log: [bold]tail -f {log}[/]")


def _wait_for_console(log: Path, marker: str, timeout: float) -> str:
    """The first line of the console log holding ``marker``, waiting up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = next((line.strip() for line in text.splitlines() if marker in line), None)
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"the guest did not print {marker} within {timeout:.0f} s; see {log}")
        time.sleep(0.5)

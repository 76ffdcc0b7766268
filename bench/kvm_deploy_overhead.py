"""What Strato adds to a guest's boot: deployVirtualMachine vs the same domain XML through libvirt.

A throw-away cloud with the ``kvm`` and ``nfs`` plugins (zone, pod, KVM cluster, host
qemu:///system, a file:// pool and image store, the test guest of
scripts/build-test-template.sh registered by its file:// URL). Each run times, until the
guest prints STRATO-GUEST-READY on its serial console:

- ``deployVirtualMachine`` through the in-process signed API: the command, the job
  (planner, capacity, root volume from the pool's template copy, the driver's define +
  create), then the boot;
- libvirt directly: ``defineXML`` + ``create`` of the very XML Strato defined for the run's
  VM (taken from libvirt), renamed, with a fresh overlay on a copy of the same template.

The order alternates between runs. Prints each run, the medians and their ratio.
Needs root and libvirtd (started with scripts/services/libvirtd.sh). Everything it made
(domains, overlays, console logs, libvirt's per-domain logs, the cloud) is removed.

    python bench/kvm_deploy_overhead.py [--runs 3] [--template PATH]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import report, scratch_cloud  # noqa: E402  (bench/common.py; this script's directory is on sys.path)

MARKER = "STRATO-GUEST-READY"


def wait_for_marker(log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and MARKER in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise SystemExit(f"{MARKER} did not appear in {log} within {timeout:.0f} s")


def build_zone(admin, pool: Path, store: Path, template: Path) -> dict:
    zone = admin("createZone", name="bench-kvm", networktype="Basic", dns1="127.0.0.1",
                 internaldns1="127.0.0.1")["zone"]
    pod = admin("createPod", zoneid=zone["id"], name="pod1", gateway="10.253.0.1", netmask="255.255.255.0",
                startip="10.253.0.10", endip="10.253.0.200")["pod"]
    cluster = admin("addCluster", zoneid=zone["id"], podid=pod["id"], clustername="kvm1", hypervisor="KVM",
                    clustertype="CloudManaged")["cluster"][0]
    admin("addHost", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], url="qemu:///system",
          hypervisor="KVM", username="root", password="unused")
    admin("createStoragePool", zoneid=zone["id"], podid=pod["id"], clusterid=cluster["id"], name="primary1",
          url=f"file://{pool}", scope="CLUSTER")
    admin("addImageStore", name="store1", url=f"file://{store}", provider="NFS", zoneid=zone["id"])
    ostype = next(o for o in admin("listOsTypes")["ostype"] if o["description"] == "Other Linux (64-bit)")
    tmpl = admin("registerTemplate", name="bench-guest", displaytext="bench guest", url=template.as_uri(),
                 zoneid=zone["id"], format="QCOW2", hypervisor="KVM", ostypeid=ostype["id"], ispublic=True)
    template_id = tmpl["template"][0]["id"]
    deadline = time.monotonic() + 300
    while not admin("listTemplates", templatefilter="all", id=template_id)["template"][0]["isready"]:
        if time.monotonic() > deadline:
            raise SystemExit("the template did not become ready")
        time.sleep(0.2)
    offering = next(o for o in admin("listServiceOfferings")["serviceoffering"] if o["name"] == "Small Instance")
    return {"zone": zone["id"], "template": template_id, "offering": offering["id"]}


def direct_xml(strato_xml: str, name: str, overlay: Path, console_log: Path) -> str:
    """Strato's domain XML for another domain: its own name, uuid, MAC, disk and console log."""
    root = ET.fromstring(strato_xml)
    root.find("name").text = name
    root.find("uuid").text = str(uuid.uuid4())
    for mac in root.iter("mac"):
        mac.set("address", "52:54:00:be:%02x:%02x" % tuple(uuid.uuid4().bytes[:2]))
    disks = [d for d in root.iter("disk") if d.get("device") == "disk"]
    if len(disks) != 1 or disks[0].find("source") is None or disks[0].find("source").get("file") is None:
        raise SystemExit("expected one file disk in Strato's domain XML")
    disks[0].find("source").set("file", str(overlay))
    for log in root.iter("log"):
        log.set("file", str(console_log))
    for graphics in root.iter("graphics"):
        graphics.attrib.pop("port", None)  # autoport picks one
    return ET.tostring(root, encoding="unicode")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--template", type=Path, help="a built test guest (default: build one)")
    args = parser.parse_args()

    subprocess.run(["bash", str(REPO / "scripts/services/libvirtd.sh")], check=True)
    import libvirt

    from api.app import create_app
    from api.inprocess import InProcessClient, user_keys

    # QEMU runs as libvirt-qemu: everything it opens sits in 0755 directories
    work = Path(tempfile.mkdtemp(prefix="strato-kvm-bench-", dir="/var/tmp"))
    pool, store, consoles = work / "pool", work / "store", work / "consoles"
    for path in (work, pool, store, consoles):
        path.mkdir(exist_ok=True)
        path.chmod(0o755)
    template = args.template
    if template is None:
        template = work / "guest.qcow2"
        subprocess.run(["bash", str(REPO / "scripts/build-test-template.sh"), str(template)], check=True)
    # the direct runs' overlays sit on a copy of the template, as Strato's sit on the pool's copy
    direct_base = work / "direct-base.qcow2"
    shutil.copyfile(template, direct_base)
    direct_base.chmod(0o644)
    cloud = scratch_cloud(plugins={"hypervisors": ["kvm"], "storage": ["nfs"], "network": [], "api": []},
                          plugin_config={"kvm": {"domain_type": "qemu", "console_log_dir": str(consoles),
                                                 "shutdown_timeout": 5}})
    admin = InProcessClient(create_app(cloud), *user_keys(cloud, "admin"))
    conn = libvirt.open("qemu:///system")
    names: list[str] = []
    through_strato: list[float] = []
    direct: list[float] = []
    strato_xml: list[str] = []

    def run_strato(i: int) -> float:
        started = time.monotonic()
        job = admin("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=zone["offering"],
                    templateid=zone["template"], name=f"bench-{i}")
        instance = admin("listVirtualMachines", id=job["id"])["virtualmachine"][0]["instancename"]
        names.append(instance)
        wait_for_marker(consoles / f"{instance}.console.log")
        elapsed = time.monotonic() - started
        admin.wait(job, timeout=300)  # done long before the guest's marker; checked, not timed
        strato_xml.append(conn.lookupByName(instance).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        admin.wait(admin("destroyVirtualMachine", id=job["id"], expunge=True), timeout=300)
        return elapsed

    def run_direct(i: int) -> float:
        if not strato_xml:  # the first run starts with libvirt: take the XML of a VM Strato made
            run_strato(-1)
        name = f"bench-direct-{i}-{uuid.uuid4().hex[:6]}"
        names.append(name)
        overlay = work / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(direct_base), "-F", "qcow2",
                        str(overlay)], check=True)
        log = consoles / f"{name}.console.log"
        xml = direct_xml(strato_xml[-1], name, overlay, log)
        started = time.monotonic()
        domain = conn.defineXML(xml)
        domain.create()
        wait_for_marker(log)
        elapsed = time.monotonic() - started
        domain.destroy()
        domain.undefine()
        overlay.unlink()
        log.unlink()
        return elapsed

    try:
        zone = build_zone(admin, pool, store, template)
        for i in range(args.runs):
            order = [("strato", run_strato), ("direct", run_direct)]
            if i % 2:
                order.reverse()
            for label, runner in order:
                seconds = runner(i)
                (through_strato if label == "strato" else direct).append(seconds)
                print(f"run {i + 1}: {label:6s} {seconds:6.2f} s", flush=True)
    finally:
        for name in names:
            try:
                domain = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        conn.close()
        cloud.close()
        shutil.rmtree(work)
        shutil.rmtree(cloud.settings.data_dir, ignore_errors=True)
        for name in names:
            Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)

    med_strato, med_direct = statistics.median(through_strato), statistics.median(direct)
    report(f"start to {MARKER}, median of {args.runs} (TCG boots vary with the machine's load)",
           [("libvirt defineXML + create", med_direct), ("deployVirtualMachine (API, job, driver)", med_strato)],
           baseline="libvirt defineXML + create")
    print(f"ratio deployVirtualMachine/direct: {med_strato / med_direct:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

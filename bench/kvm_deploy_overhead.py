"""What LibvirtDriver adds to a guest's start: driver.start_vm vs plain libvirt.

For each run, the same test guest (scripts/build-test-template.sh) is started twice, on a
fresh overlay each time, and timed until its console shows STRATO-GUEST-READY:

- through ``LibvirtDriver.start_vm`` (lookup, domain type, XML, define, create, details);
- through libvirt directly: ``defineXML`` + ``create`` of the XML ``config.domain_xml``
  builds for the same spec.

The order alternates between runs. Prints each run and the ratio of the medians.
Needs root and libvirtd (started with scripts/services/libvirtd.sh). Everything it makes
(domains, overlays, console logs, libvirt's per-domain logs) is removed afterwards.

    python bench/kvm_deploy_overhead.py [--runs 3] [--template PATH]

(When the API exists this is to go through deployVirtualMachine instead.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common import report  # noqa: E402  (bench/common.py; this script's directory is on sys.path)
from core.drivers import HostRef, NicSpec, VmSpec, VolumeSpec  # noqa: E402

MARKER = "STRATO-GUEST-READY"


def wait_for_marker(log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and MARKER in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise SystemExit(f"{MARKER} did not appear in {log} within {timeout:.0f} s")


def spec(pool: Path, template: Path, name: str) -> VmSpec:
    overlay = pool / f"{name}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(template), "-F", "qcow2", str(overlay)],
                   check=True)
    vm_uuid = str(uuid.uuid4())
    return VmSpec(uuid=vm_uuid, instance_name=name, display_name=name, cpu_count=1, cpu_speed_mhz=500,
                  memory_mb=128,
                  volumes=[VolumeSpec(uuid=str(uuid.uuid4()), name="ROOT", volume_type="ROOT", size_bytes=0,
                                      device_id=0, pool_url=f"file://{pool}", pool_details={},
                                      path=overlay.name)],
                  # a user-mode NIC: both paths get the same one and need no bridge
                  nics=[NicSpec(mac_address="52:54:00:be:%02x:%02x" % tuple(os.urandom(2)), ip_address=None,
                                netmask=None, gateway=None, device_id=0, is_default=True)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--template", type=Path, help="a built test guest (default: build one)")
    args = parser.parse_args()

    subprocess.run(["bash", str(REPO / "scripts/services/libvirtd.sh")], check=True)
    import libvirt

    from plugins.hypervisor_kvm import config
    from plugins.hypervisor_kvm.driver import LibvirtDriver

    # QEMU runs as libvirt-qemu: everything it opens sits in a 0755 directory
    work = Path(tempfile.mkdtemp(prefix="strato-kvm-bench-", dir="/var/tmp"))
    work.chmod(0o755)
    consoles = work / "consoles"
    template = args.template
    if template is None:
        template = work / "guest.qcow2"
        subprocess.run(["bash", str(REPO / "scripts/build-test-template.sh"), str(template)], check=True)
        template.chmod(0o644)
    driver = LibvirtDriver({"domain_type": "qemu", "console_log_dir": str(consoles), "shutdown_timeout": 5})
    conn = libvirt.open("qemu:///system")
    info = driver.connect_host("qemu:///system", None, None)
    host = HostRef(uuid=str(uuid.uuid4()), name=info.name, url="qemu:///system", details=info.details)
    names: list[str] = []
    through_driver: list[float] = []
    direct: list[float] = []

    def run_driver(i: int) -> float:
        vm = spec(work, template, f"bench-driver-{i}-{uuid.uuid4().hex[:6]}")
        names.append(vm.instance_name)
        started = time.monotonic()
        details = driver.start_vm(host, vm)
        wait_for_marker(Path(details["console_log"]))
        elapsed = time.monotonic() - started
        driver.destroy_vm(host, vm)
        return elapsed

    def run_direct(i: int) -> float:
        vm = spec(work, template, f"bench-direct-{i}-{uuid.uuid4().hex[:6]}")
        names.append(vm.instance_name)
        log = consoles / f"{vm.instance_name}.console.log"
        xml = config.domain_xml(vm, domain_type="qemu", console_log=str(log))
        started = time.monotonic()
        domain = conn.defineXML(xml)
        domain.create()
        wait_for_marker(log)
        elapsed = time.monotonic() - started
        domain.destroy()
        domain.undefine()
        return elapsed

    try:
        consoles.mkdir()
        for i in range(args.runs):
            order = [("driver", run_driver), ("direct", run_direct)]
            if i % 2:
                order.reverse()
            for label, runner in order:
                seconds = runner(i)
                (through_driver if label == "driver" else direct).append(seconds)
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
        driver.close()
        shutil.rmtree(work)
        for name in names:
            Path(f"/var/log/libvirt/qemu/{name}.log").unlink(missing_ok=True)

    med_driver, med_direct = statistics.median(through_driver), statistics.median(direct)
    report(f"start to {MARKER}, median of {args.runs} (TCG boots vary with the machine's load)",
           [("libvirt defineXML + create", med_direct), ("LibvirtDriver.start_vm", med_driver)],
           baseline="libvirt defineXML + create")
    print(f"ratio driver/direct: {med_driver / med_direct:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


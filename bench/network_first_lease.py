"""From createNetwork to the first VM's served DHCP lease, through the API: the network is
created, a VM deployed on it (its router is built on the way: namespace, nftables,
dnsmasq), and a guest namespace with the VM's MAC takes its lease. The baseline is the
least that can serve such a lease: a bridge, a namespace and a dnsmasq with one static
lease, set up by hand with the same tools.

Needs root and the tools of scripts/apt/network.txt. Usage: python bench/network_first_lease.py [--runs N]"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time

from common import report, scratch_cloud

from api.app import create_app
from api.inprocess import InProcessClient, user_keys
from tests.helpers import make_account, offering_id
from tests.plugins.network_vr import world as world_module
from tests.plugins.network_vr.zone import advanced_zone, network_row


def wait_closely(client, job: dict, timeout: float = 60) -> dict:
    """queryAsyncJobResult every 5 ms (the client's own backing-off poll would add up to its
    last interval to what is measured)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = client("queryAsyncJobResult", jobid=job["jobid"])
        if result["jobstatus"] == 1:
            return result["jobresult"]
        if result["jobstatus"] == 2:
            raise RuntimeError(result["jobresult"])
        time.sleep(0.005)
    raise TimeoutError(job)


def strato_run(cloud, admin, app, world, zone, index: int) -> dict[str, float]:
    tenant = InProcessClient(app, *user_keys(cloud, make_account(cloud, f"bench{index}")))
    offering = tenant("listNetworkOfferings", name="DefaultIsolatedNetworkOfferingWithSourceNatService")[
        "networkoffering"][0]["id"]
    start = time.perf_counter()
    network = tenant("createNetwork", name=f"n{index}", zoneid=zone.id, networkofferingid=offering)["network"]
    created = time.perf_counter()
    job = tenant("deployVirtualMachine", zoneid=zone.id, serviceofferingid=offering_id(cloud),
                 templateid=zone.template, networkids=network["id"], name=f"vm{index}")
    vm = wait_closely(tenant, job)["virtualmachine"]
    deployed = time.perf_counter()
    guest = world.guest(f"g{index}", network_row(cloud, network["id"])["bridge"], vm["nic"][0]["macaddress"])
    lease = guest.dhcp()
    leased = time.perf_counter()
    assert lease["ip"] == vm["nic"][0]["ipaddress"]
    return {"total": leased - start, "createNetwork": created - start, "deploy (router built)": deployed - created,
            "guest up + lease": leased - deployed}


def baseline_run(world, index: int) -> float:
    """A bridge, a namespace on it with dnsmasq serving one static lease, a guest taking it."""
    state = tempfile.mkdtemp(prefix="strato-bench-lease-", dir=world.tmp)
    mac = f"02:00:00:be:00:{index:02x}"
    start = time.perf_counter()
    bridge = world.bridge(f"b{index}")
    server = world.namespace(f"srv{index}")
    dev = world.veth_into(server, bridge)
    world_module.sh("ip", "-n", server, "addr", "add", "10.9.0.1/24", "dev", dev)
    with open(f"{state}/hosts", "w") as f:
        f.write(f"{mac},10.9.0.10,vm{index},infinite\n")
    subprocess.run(["ip", "netns", "exec", server, "dnsmasq", "--conf-file=/dev/null", "--port=0",
                    f"--interface={dev}", "--bind-interfaces", "--except-interface=lo",
                    "--dhcp-range=10.9.0.0,static,255.255.255.0,infinite", f"--dhcp-hostsfile={state}/hosts",
                    f"--dhcp-leasefile={state}/leases", f"--pid-file={state}/pid", "--user=root"], check=True)
    guest = world.guest(f"bg{index}", bridge, mac)
    lease = guest.dhcp()
    elapsed = time.perf_counter() - start
    assert lease["ip"] == "10.9.0.10"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    missing = world_module.missing_tools()
    if missing:
        print(f"network_first_lease: skipped, missing {', '.join(missing)}")
        return
    world = world_module.World()
    state_dir = tempfile.mkdtemp(prefix="strato-bench-vr-")
    cloud = scratch_cloud(plugins={"hypervisors": ["simulator"], "storage": ["simulator"], "network": ["vr"],
                                   "api": ["simulator"]},
                          plugin_config={"vr": {"prefix": world_module.ROUTER_PREFIX,
                                                "state_dir": state_dir}})
    element = cloud.plugins.network["vr"]
    networks = []
    try:
        app = create_app(cloud)
        admin = InProcessClient(app, *user_keys(cloud, "admin"))
        zone = advanced_zone(cloud, admin, world, start="198.51.100.10", end="198.51.100.60")
        runs = []
        for index in range(args.runs):
            runs.append(strato_run(cloud, admin, app, world, zone, index))
        baseline = statistics.median(baseline_run(world, index) for index in range(args.runs))
        phases = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
        report(f"createNetwork + first VM to a served DHCP lease (median of {args.runs})",
               [("baseline: bridge + namespace + dnsmasq by hand, lease", baseline),
                ("Strato: createNetwork -> deploy -> lease", phases["total"]),
                *[(f"  of which {name}", phases[name]) for name in ("createNetwork", "deploy (router built)",
                                                                   "guest up + lease")]],
               baseline="baseline: bridge + namespace + dnsmasq by hand, lease")
    finally:
        from sqlalchemy import select

        from core.model import Network
        from core.orchestration.networking import network_spec

        with cloud.db.transaction() as session:
            networks = [network_spec(session, n, router_state="Stopped")
                        for n in session.scalars(select(Network).where(Network.provider == "vr"))]
        for spec in networks:
            element.shutdown_network(spec)
        cloud.close()
        world.close()
        shutil.rmtree(cloud.settings.data_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

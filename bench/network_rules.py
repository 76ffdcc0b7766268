"""1,000 port-forwarding rules put on a real router one by one: incrementally (only the new
rule's map element and firewall rule go into the running nftables table) against a full
re-apply of the whole table for each rule, and against one full apply of all 1,000.

Runs the virtual router's element directly on the host (root, nftables, dnsmasq), with a
network dict as the core computes it, so what is timed is the router's side of a change.
Usage: python bench/network_rules.py [--rules N]"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
import uuid

from common import report  # noqa: F401 (sets sys.path)

from plugins.network_vr.element import VirtualRouterElement
from tests.plugins.network_vr import world as world_module


def network(uuid_: str, bridge: str) -> dict:
    return {
        "uuid": uuid_, "name": "bench", "guest_type": "Isolated", "cidr": "10.1.1.0/24", "gateway": "10.1.1.1",
        "network_domain": "bench.internal", "dns": [],
        "services": ["Dhcp", "Dns", "SourceNat", "StaticNat", "PortForwarding", "Firewall"],
        "router": {"state": "Running", "name": "r-bench", "guest_ip": "10.1.1.1"},
        "public": {"bridge": bridge, "gateway": world_module.PUBLIC_GATEWAY, "netmask": "255.255.255.0",
                   "addresses": ["198.51.100.10", "198.51.100.11"], "source_nat": "198.51.100.10"},
        "nics": [{"mac": "02:00:00:00:01:01", "ip": "10.1.1.10", "hostname": "vm", "vm": "vm-1"}],
        "port_forwarding": [], "firewall": [], "static_nat": [], "load_balancers": [],
        "egress": {"default_allow": True, "rules": []}, "vpn": None,
    }


def add_rule(spec: dict, index: int) -> None:
    port = 10000 + index
    spec["port_forwarding"].append({"id": f"pf{index}", "public": "198.51.100.11", "protocol": "tcp",
                                    "public_start": port, "public_end": port, "private_ip": "10.1.1.10",
                                    "private_start": 80, "private_end": 80})
    spec["firewall"].append({"id": f"fw{index}", "public": "198.51.100.11", "protocol": "tcp", "start": port,
                             "end": port, "cidrs": ["0.0.0.0/0"]})


def one_by_one(element: VirtualRouterElement, base: dict, rules: int) -> tuple[float, float, set[str]]:
    """(total seconds, median seconds of the last 50 rules, how the table was changed)."""
    spec = copy.deepcopy(base)
    element.implement_network(copy.deepcopy(spec))
    ways, times = set(), []
    for index in range(rules):
        add_rule(spec, index)
        start = time.perf_counter()
        ways.add(element.implement_network(spec)["nft"])
        times.append(time.perf_counter() - start)
    return sum(times), statistics.median(times[-50:]), ways


def all_at_once(element: VirtualRouterElement, base: dict, rules: int) -> float:
    spec = copy.deepcopy(base)
    element.implement_network(copy.deepcopy(spec))
    for index in range(rules):
        add_rule(spec, index)
    spec["full_apply"] = True
    start = time.perf_counter()
    element.implement_network(spec)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=1000)
    args = parser.parse_args()
    missing = world_module.missing_tools()
    if missing:
        print(f"network_rules: skipped, missing {', '.join(missing)}")
        return
    world = world_module.World()
    state = tempfile.mkdtemp(prefix="strato-bench-vr-")
    elements = {"incremental": VirtualRouterElement({"state_dir": state, "prefix": world_module.ROUTER_PREFIX}),
                "full": VirtualRouterElement({"state_dir": state, "prefix": world_module.ROUTER_PREFIX,
                                              "incremental": False})}
    specs = {name: network(str(uuid.uuid4()), world.public_bridge) for name in elements}
    try:
        incremental, last_incremental, ways_incremental = one_by_one(elements["incremental"], specs["incremental"],
                                                                     args.rules)
        full, last_full, ways_full = one_by_one(elements["full"], specs["full"], args.rules)
        once = all_at_once(elements["full"], specs["full"], args.rules)
        assert ways_incremental == {"incremental"} and ways_full == {"full"}, (ways_incremental, ways_full)
        n = args.rules
        report(f"{n} port-forwarding rules (each with its firewall rule) added one by one to a running router",
               [("incremental: each rule's change only", incremental),
                ("full re-apply of the whole table for each rule", full)],
               baseline="incremental: each rule's change only")
        report(f"one more rule on a router that has ~{n} (median of the last 50)",
               [("incremental", last_incremental), ("full re-apply", last_full),
                (f"(a full start with all {n}: links, daemons, table)", once)],
               baseline="incremental")
    finally:
        for name, element in elements.items():
            element.shutdown_network(specs[name])
        world.close()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()

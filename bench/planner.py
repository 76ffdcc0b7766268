"""Planner time with 10 hosts against 10,000 hosts (the ratio shows how it scales).
Each plan runs in a transaction that is rolled back, so every run sees the same capacity.
Usage: python bench/planner.py [--db URL]"""

from __future__ import annotations

import argparse

from common import best_of, report, scratch_cloud

from core.orchestration.planner import DeploymentRequest, Thresholds, plan
from tests.core.factories import add_cluster, add_host, add_pool, zone_with_cluster


def build(cloud, hosts: int, per_cluster: int = 100) -> int:
    with cloud.db.transaction() as session:
        zone, pod, cluster = zone_with_cluster(session, name=f"z{hosts}")
        for index in range(hosts):
            if index and index % per_cluster == 0:
                cluster = add_cluster(session, zone, pod, f"z{hosts}-c{index // per_cluster}")
            if index % per_cluster == 0:
                add_pool(session, cluster, f"z{hosts}-p{index // per_cluster}")
            # all but the last host are too small, so the planner walks the whole zone
            big = index == hosts - 1
            add_host(session, cluster, f"h{index}", cores=8 if big else 1, mhz=2000,
                     memory_mib=65536 if big else 256)
        return zone.id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    cloud = scratch_cloud(args.db)
    zones = {n: build(cloud, n) for n in (10, 10_000)}

    def planner(zone_id):
        def run():
            with cloud.db.session() as session, session.begin():
                request = DeploymentRequest(zone_id=zone_id, cpu_count=2, cpu_speed=1000, memory_mb=4096,
                                            root_size_bytes=2**30)
                plan(session, request, Thresholds())
                session.rollback()
        return run

    report("deployment planner: one plan, the fitting host last",
           [("10 hosts", best_of(planner(zones[10]), 9)), ("10,000 hosts", best_of(planner(zones[10_000]), 3))],
           baseline="10 hosts")
    cloud.close()


if __name__ == "__main__":
    main()

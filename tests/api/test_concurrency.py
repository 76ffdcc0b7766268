"""Concurrent deploys into limited capacity never over-commit, on every database."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from core.model import Capacity, CapacityType, VirtualMachine
from tests.core.factories import simulated_zone
from tests.helpers import ApiClient, ApiError, make_account, offering_id

MiB = 1024**2


def test_parallel_deploys_fill_exactly_the_capacity(app, cloud):
    # one host: 2048 MiB, so exactly four 512 MiB VMs fit
    zone = simulated_zone(cloud, hosts=1, cores=8, mhz=2000, memory_mib=2048)
    with cloud.db.transaction() as session:  # fill to the last byte: no disable threshold
        cloud.config.set(session, "cluster.memory.allocated.capacity.disablethreshold", "1.0")
    tenant = ApiClient.for_user(app, cloud, make_account(cloud, "carol"))
    offering = offering_id(cloud)
    outcomes: list[str] = []
    lock = threading.Lock()

    def deploy_one():
        client = ApiClient(app, tenant.api_key, tenant.secret_key)  # a test client per thread
        job = client("deployVirtualMachine", zoneid=zone["zone"], serviceofferingid=offering,
                     templateid=zone["template"])
        try:
            state = client.wait(job, timeout=120)["virtualmachine"]["state"]
        except ApiError as exc:
            state = f"failed {exc.status}"
        with lock:
            outcomes.append(state)

    threads = [threading.Thread(target=deploy_one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes).count("Running") == 4, outcomes
    assert outcomes.count("failed 533") == 8, outcomes
    with cloud.db.transaction() as session:
        used = session.scalar(select(Capacity.used).where(Capacity.capacity_type == CapacityType.MEMORY))
        running = session.scalar(select(func.count()).where(VirtualMachine.state == "Running"))
    assert used == 4 * 512 * MiB and running == 4

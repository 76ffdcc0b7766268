"""The deployment planner: first fit, capacity with overprovisioning, thresholds, tags,
avoid sets, 533 when nothing fits, and no over-commit (a property test)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from core.errors import InsufficientCapacityError
from core.model import Base, Capacity, CapacityType
from core.orchestration.planner import DeploymentRequest, Thresholds, plan

from .factories import GiB, add_cluster, add_host, add_pool, zone_with_cluster

LOOSE = Thresholds(cluster_cpu=1.0, cluster_memory=1.0, pool=1.0)


def request(zone, cpus=1, mhz=1000, memory=1024, root=10 * GiB, **kw):
    return DeploymentRequest(zone_id=zone.id, cpu_count=cpus, cpu_speed=mhz, memory_mb=memory,
                             root_size_bytes=root, **kw)


@pytest.fixture
def session(cloud):
    with cloud.db.transaction() as session:
        yield session


def used(session, host_id, kind):
    return session.scalar(select(Capacity.used).where(Capacity.host_id == host_id, Capacity.capacity_type == kind))


def test_first_fit_takes_the_first_host_with_room_and_reserves_it(session):
    zone, _, cluster = zone_with_cluster(session)
    small = add_host(session, cluster, "small", cores=1, mhz=1000, memory_mib=1024)
    big = add_host(session, cluster, "big")
    add_pool(session, cluster, "p0")
    first = plan(session, request(zone, memory=1024), LOOSE)
    assert first.host.id == small.id
    second = plan(session, request(zone, memory=1024), LOOSE)
    assert second.host.id == big.id, "the small host is full now"
    assert used(session, small.id, CapacityType.MEMORY) == 1024 * 1024 * 1024
    assert used(session, big.id, CapacityType.CPU) == 1000


def test_overprovisioning_factor_multiplies_cpu(session):
    zone, _, cluster = zone_with_cluster(session, cpu_factor=2.0)
    host = add_host(session, cluster, "h", cores=1, mhz=2000)
    add_pool(session, cluster, "p0")
    for _ in range(4):  # 4 x 1000 MHz on 2000 MHz x 2.0
        assert plan(session, request(zone, memory=128), LOOSE).host.id == host.id
    with pytest.raises(InsufficientCapacityError) as err:
        plan(session, request(zone, memory=128), LOOSE)
    assert err.value.errorcode == 533
    assert "CPU" in err.value.message


def test_disable_threshold_skips_a_cluster(session):
    zone, pod, busy = zone_with_cluster(session)
    add_host(session, busy, "h0", cores=1, mhz=1000, memory_mib=1024)
    add_pool(session, busy, "p0")
    spare = add_cluster(session, zone, pod, "spare")
    other = add_host(session, spare, "h1")
    add_pool(session, spare, "p1")
    strict = Thresholds(cluster_cpu=0.5, cluster_memory=1.0, pool=1.0)
    # 1000 MHz of 1000 is over a 50% threshold, so the first cluster is skipped
    assert plan(session, request(zone, memory=128), strict).host.id == other.id


def test_host_tags_and_avoid_sets(session):
    zone, _, cluster = zone_with_cluster(session)
    plain = add_host(session, cluster, "plain")
    tagged = add_host(session, cluster, "tagged", tags="ssd,gpu")
    add_pool(session, cluster, "p0")
    assert plan(session, request(zone, host_tag="gpu"), LOOSE).host.id == tagged.id
    assert plan(session, request(zone, avoid_hosts={plain.id}), LOOSE).host.id == tagged.id
    with pytest.raises(InsufficientCapacityError, match="host tag"):
        plan(session, request(zone, host_tag="fpga"), LOOSE)


def test_down_and_disabled_hosts_are_skipped(session):
    zone, _, cluster = zone_with_cluster(session)
    add_host(session, cluster, "down", status="Down")
    add_host(session, cluster, "maint", resource_state="Maintenance")
    up = add_host(session, cluster, "up")
    add_pool(session, cluster, "p0")
    assert plan(session, request(zone), LOOSE).host.id == up.id


def test_storage_tags_and_pool_space(session):
    zone, _, cluster = zone_with_cluster(session)
    add_host(session, cluster, "h")
    add_pool(session, cluster, "slow", capacity_gib=100)
    fast = add_pool(session, cluster, "fast", capacity_gib=100, tags="ssd")
    assert plan(session, request(zone, storage_tags=["ssd"]), LOOSE).pool.id == fast.id
    with pytest.raises(InsufficientCapacityError, match="not enough free space"):
        plan(session, request(zone, root=500 * GiB), LOOSE)


def test_nothing_fits_leaves_nothing_reserved(session):
    zone, _, cluster = zone_with_cluster(session)
    host = add_host(session, cluster, "h", cores=2, mhz=2000, memory_mib=1024)
    add_pool(session, cluster, "p0", capacity_gib=1)  # the host fits, the pool does not
    with pytest.raises(InsufficientCapacityError):
        plan(session, request(zone, memory=512, root=5 * GiB), LOOSE)
    assert used(session, host.id, CapacityType.CPU) == 0
    assert used(session, host.id, CapacityType.MEMORY) == 0


def test_wrong_hypervisor_has_no_cluster(session):
    zone, _, cluster = zone_with_cluster(session)
    add_host(session, cluster, "h")
    add_pool(session, cluster, "p0")
    with pytest.raises(InsufficientCapacityError, match="no enabled KVM cluster"):
        plan(session, request(zone, hypervisor="KVM"), LOOSE)


def test_plugins_can_avoid_hosts(cloud, session):
    from core import hookimpl

    zone, _, cluster = zone_with_cluster(session)
    first = add_host(session, cluster, "first")
    second = add_host(session, cluster, "second")
    add_pool(session, cluster, "p0")

    class AvoidFirst:
        @hookimpl
        def strato_planner_avoid_hosts(self, request, candidates):
            assert first in candidates
            return [first.id]

    cloud.plugins.register(AvoidFirst(), "avoid-first")
    try:
        assert plan(session, request(zone), LOOSE, cloud.plugins).host.id == second.id
    finally:
        cloud.plugins.unregister("avoid-first")


hosts_strategy = st.lists(st.tuples(st.integers(1, 8), st.sampled_from([1000, 2000, 3000]),
                                    st.integers(1, 16)), min_size=1, max_size=6)
requests_strategy = st.lists(st.tuples(st.integers(1, 4), st.sampled_from([500, 1000, 2000]),
                                       st.sampled_from([256, 512, 1024, 4096])), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hosts=hosts_strategy, requests=requests_strategy, factor=st.sampled_from([1.0, 1.5, 2.0]))
def test_property_never_over_commits_and_fails_only_when_nothing_fits(hosts, requests, factor):
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        zone, _, cluster = zone_with_cluster(session, cpu_factor=factor, mem_factor=factor)
        rows = [add_host(session, cluster, f"h{i}", cores=c, mhz=m, memory_mib=g * 1024)
                for i, (c, m, g) in enumerate(hosts)]
        add_pool(session, cluster, "p0", capacity_gib=10**6)
        for cpus, mhz, memory in requests:
            req = request(zone, cpus=cpus, mhz=mhz, memory=memory, root=GiB)
            free = [h for h in rows
                    if cpus <= h.cpu_cores and mhz <= h.cpu_speed
                    and used(session, h.id, CapacityType.CPU) + req.cpu_mhz <= h.cpu_cores * h.cpu_speed * factor
                    and used(session, h.id, CapacityType.MEMORY) + req.memory_bytes <= h.memory * factor]
            try:
                chosen = plan(session, req, LOOSE)
            except InsufficientCapacityError:
                assert not free, "533 although a host had room"
                continue
            assert chosen.host.id == free[0].id, "first fit takes the first host with room"
        for h in rows:
            assert used(session, h.id, CapacityType.CPU) <= h.cpu_cores * h.cpu_speed * factor
            assert used(session, h.id, CapacityType.MEMORY) <= h.memory * factor

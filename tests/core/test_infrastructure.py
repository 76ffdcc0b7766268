"""core.orchestration.infrastructure: driver calls undone when the rows that record
them roll back, removals told to the driver only after the commit, host pings."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.drivers import PoolInfo, PrimaryStorageDriver
from core.errors import ResourceInUseError
from core.model import Capacity, Cluster, Host, HostStatus, ResourceState, StoragePool, Zone
from core.orchestration import infrastructure

from .factories import add_host, add_image_store, add_template, zone_with_cluster

URL = "http://sim/c0/h0?cpus=2&mhz=1000&ram=2048"


class Boom(Exception):
    """Stands for anything that makes the command's transaction roll back."""


class RecordingStorage(PrimaryStorageDriver):
    """A primary storage driver that only records what it is told."""

    name = "recording"
    url_schemes = ("rec",)

    def __init__(self, config=None):
        super().__init__(config)
        self.calls: list[tuple[str, str]] = []

    def connect_pool(self, url, details):
        self.calls.append(("connect", url))
        return PoolInfo(capacity_bytes=10 * 1024**3, used_bytes=0)

    def disconnect_pool(self, pool):
        self.calls.append(("disconnect", pool.url))

    def pool_stats(self, pool):
        return PoolInfo(capacity_bytes=10 * 1024**3, used_bytes=0)

    def create_volume(self, pool, volume, template):
        raise NotImplementedError

    def delete_volume(self, pool, volume):
        raise NotImplementedError


@pytest.fixture
def sim(cloud):
    return cloud.plugins.hypervisors["simulator"]


@pytest.fixture
def recording(cloud):
    driver = RecordingStorage()
    cloud.plugins.add_driver("storage", "recording", driver)
    return driver


def known_to_simulator(sim, key: str) -> bool:
    with sim.state.cursor() as cur:
        return cur.execute("SELECT 1 FROM sim_host WHERE url = ?", (key,)).fetchone() is not None


def cluster_id(cloud) -> int:
    with cloud.db.transaction() as session:
        return zone_with_cluster(session)[2].id


def test_an_added_host_is_forgotten_by_the_driver_when_the_transaction_rolls_back(cloud, sim):
    cid = cluster_id(cloud)
    with pytest.raises(Boom), cloud.db.transaction() as session:
        infrastructure.add_host(cloud, session, session.get(Cluster, cid), URL)
        assert known_to_simulator(sim, "sim/c0/h0")
        raise Boom()
    assert not known_to_simulator(sim, "sim/c0/h0")
    with cloud.db.transaction() as session:
        assert session.scalar(select(Host.id)) is None and session.scalar(select(Capacity.id)) is None


def test_a_failed_write_disconnects_the_host_and_keeps_the_error(cloud, sim, monkeypatch):
    cid = cluster_id(cloud)

    def broken(session, host):
        raise Boom("capacity row refused")

    monkeypatch.setattr(infrastructure.capacity, "create_host_capacity", broken)
    with pytest.raises(Boom, match="capacity row refused"), cloud.db.transaction() as session:
        infrastructure.add_host(cloud, session, session.get(Cluster, cid), URL)
    assert not known_to_simulator(sim, "sim/c0/h0")


def test_a_removed_host_is_disconnected_only_after_the_commit(cloud, sim):
    cid = cluster_id(cloud)
    with cloud.db.transaction() as session:
        host_id = infrastructure.add_host(cloud, session, session.get(Cluster, cid), URL).id
    with pytest.raises(Boom), cloud.db.transaction() as session:
        infrastructure.remove_host(cloud, session, session.get(Host, host_id))
        raise Boom()
    assert known_to_simulator(sim, "sim/c0/h0"), "a rolled-back removal tells the driver nothing"
    with cloud.db.transaction() as session:
        infrastructure.remove_host(cloud, session, session.get(Host, host_id))
    assert not known_to_simulator(sim, "sim/c0/h0")
    with cloud.db.transaction() as session:
        assert session.get(Host, host_id).removed is not None
        assert session.scalar(select(Capacity.id).where(Capacity.host_id == host_id)) is None


def test_pool_connect_is_undone_on_rollback_and_removal_told_after_commit(cloud, recording):
    cid = cluster_id(cloud)
    with pytest.raises(Boom), cloud.db.transaction() as session:
        cluster = session.get(Cluster, cid)
        infrastructure.add_storage_pool(cloud, session, zone=session.get(Zone, cluster.zone_id), name="p",
                                        url="rec://a", scope="CLUSTER", provider="recording", cluster=cluster,
                                        pod=cluster.pod)
        raise Boom()
    assert recording.calls == [("connect", "rec://a"), ("disconnect", "rec://a")]
    recording.calls.clear()
    with cloud.db.transaction() as session:
        cluster = session.get(Cluster, cid)
        pool = infrastructure.add_storage_pool(cloud, session, zone=session.get(Zone, cluster.zone_id), name="p",
                                               url="rec://a", scope="CLUSTER", provider="recording",
                                               cluster=cluster, pod=cluster.pod)
        assert pool.overprovisioning == 2.0, "the global storage.overprovisioning.factor"
        pool_id = pool.id
    assert recording.calls == [("connect", "rec://a")]
    with cloud.db.transaction() as session:
        infrastructure.remove_storage_pool(cloud, session, session.get(StoragePool, pool_id))
        assert recording.calls == [("connect", "rec://a")], "not before the commit"
    assert recording.calls[-1] == ("disconnect", "rec://a")


def test_ping_marks_hosts_up_alert_down(cloud, sim):
    with cloud.db.transaction() as session:
        _, _, cluster = zone_with_cluster(session)
        host = add_host(session, cluster, "h0")
        host_uuid, key = host.uuid, host.details["sim_key"]
    assert infrastructure.ping_hosts(cloud) == {}, "an Up host that answers stays Up"
    sim.set_host_up(key, False)
    assert infrastructure.ping_hosts(cloud) == {host_uuid: HostStatus.ALERT}
    assert infrastructure.ping_hosts(cloud) == {host_uuid: HostStatus.DOWN}
    assert infrastructure.ping_hosts(cloud) == {}
    sim.set_host_up(key, True)
    assert infrastructure.ping_hosts(cloud) == {host_uuid: HostStatus.UP}
    with cloud.db.transaction() as session:
        assert session.scalar(select(Host.last_pinged).where(Host.uuid == host_uuid)) > 0


def test_ping_reports_hosts_whose_plugin_is_not_enabled(cloud):
    with cloud.db.transaction() as session:
        _, _, cluster = zone_with_cluster(session)
        host = add_host(session, cluster, "h0")
        host.hypervisor = "XenServer"
        host_uuid = host.uuid
    assert infrastructure.ping_hosts(cloud) == {host_uuid: HostStatus.ALERT}


def test_maintenance_stops_when_cancelled_meanwhile(cloud):
    with cloud.db.transaction() as session:
        _, _, cluster = zone_with_cluster(session)
        host = add_host(session, cluster, "h0")
        infrastructure.begin_host_maintenance(session, host)
        host_uuid = host.uuid
    infrastructure.cancel_host_maintenance(cloud, host_uuid)
    infrastructure.run_host_maintenance(cloud, host_uuid)
    with cloud.db.transaction() as session:
        assert session.scalar(select(Host.resource_state).where(Host.uuid == host_uuid)) == ResourceState.ENABLED


def test_image_store_in_use_is_refused(cloud):
    with cloud.db.transaction() as session:
        zone, _, _ = zone_with_cluster(session)
        store = add_image_store(session, zone)
        add_template(session, store)
        with pytest.raises(ResourceInUseError):
            infrastructure.remove_image_store(session, store)

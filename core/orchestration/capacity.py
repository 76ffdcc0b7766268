"""Capacity: what each host and pool has, and what is reserved on it.

``used`` moves only through ``reserve``/``release``, single conditional UPDATEs
(``used + amount <= limit``), so concurrent deploys on any of the three
databases can never over-commit a host, whatever the isolation level.
"""

from __future__ import annotations

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from ..model import Capacity, CapacityType, Host, StoragePool


def create_host_capacity(session: Session, host: Host) -> None:
    cpu_total = host.cpu_cores * host.cpu_speed
    for kind, total in ((CapacityType.CPU, cpu_total), (CapacityType.MEMORY, host.memory)):
        session.add(Capacity(capacity_type=kind, zone_id=host.zone_id, pod_id=host.pod_id,
                             cluster_id=host.cluster_id, host_id=host.id, total=total, used=0))


def create_pool_capacity(session: Session, pool: StoragePool) -> None:
    session.add(Capacity(capacity_type=CapacityType.STORAGE_ALLOCATED, zone_id=pool.zone_id,
                         pod_id=pool.pod_id, cluster_id=pool.cluster_id, pool_id=pool.id,
                         total=pool.capacity_bytes, used=0))


def delete_capacity(session: Session, *, host_id: int | None = None, pool_id: int | None = None) -> None:
    rows = session.scalars(select(Capacity).where(
        Capacity.host_id == host_id if host_id is not None else Capacity.pool_id == pool_id)).all()
    for row in rows:
        session.delete(row)


def lock(session: Session, *, host_id: int | None = None, pool_id: int | None = None) -> None:
    """Hold the host's or pool's capacity rows until the transaction ends, waiting first for
    every transaction that is reserving on them. A removal takes this before it looks for
    what uses the resource, so it sees the deploys that reserved it meanwhile (on SQLite
    every write transaction is serialised anyway)."""
    owner = Capacity.host_id == host_id if host_id is not None else Capacity.pool_id == pool_id
    session.execute(select(Capacity.id).where(owner).with_for_update()).all()


def reserve(session: Session, capacity_type: int, amount: int, limit: float, *,
            host_id: int | None = None, pool_id: int | None = None) -> bool:
    """Add ``amount`` to ``used`` if the result stays within ``limit``; False if it would not."""
    owner = Capacity.host_id == host_id if host_id is not None else Capacity.pool_id == pool_id
    result = session.execute(
        update(Capacity).where(owner, Capacity.capacity_type == capacity_type,
                               Capacity.used + amount <= int(limit))
        .values(used=Capacity.used + amount).execution_options(synchronize_session=False))
    return result.rowcount == 1


def release(session: Session, capacity_type: int, amount: int, *, host_id: int | None = None,
            pool_id: int | None = None) -> None:
    """Give ``amount`` back (never below zero)."""
    if not amount:
        return
    owner = Capacity.host_id == host_id if host_id is not None else Capacity.pool_id == pool_id
    session.execute(update(Capacity).where(owner, Capacity.capacity_type == capacity_type).values(
        used=case((Capacity.used >= amount, Capacity.used - amount), else_=0))
        .execution_options(synchronize_session=False))


def used_and_total(session: Session, capacity_type: int, *, host_id=None, pool_id=None) -> tuple[int, int]:
    owner = Capacity.host_id == host_id if host_id is not None else Capacity.pool_id == pool_id
    row = session.scalar(select(Capacity).where(owner, Capacity.capacity_type == capacity_type))
    return (row.used, row.total) if row else (0, 0)

"""Resource limits and counts of accounts, domains and projects (CloudStack's resource_limit
and resource_count).

How other code uses it, inside the transaction that creates or removes the resource:

    limits.reserve(session, owner_account, ResourceType.VOLUME, 1)        # 532 when over a limit
    limits.reserve(session, owner_account, ResourceType.PRIMARY_STORAGE, size_bytes)
    ...
    limits.release(session, owner_account, ResourceType.VOLUME, 1)        # when it is removed

``reserve`` adds to the account's count and to the counts of its domain and every domain
above it, each by one conditional UPDATE (``count + amount <= limit``), as
``capacity.reserve`` does: concurrent creations on any of the three databases can never
pass a limit, whatever the isolation level, and a refusal rolls the transaction back
with error 532. Rows are taken in one order (type, then account, then domains from the
deepest up), so two transactions never wait on each other in a cycle.

Units: counts of memory are MiB and of storage bytes; limits (the API's ``max``) are
MiB for memory and GiB for storage. -1 is unlimited.

Limits: an account's is its explicit ``ResourceLimit`` row, else the global
``max.account.*`` setting (``max.project.*`` for a project's account); root admin
accounts have none. A domain's is its own row, else its nearest ancestor's; ROOT has none.

``updateResourceCount`` recounts from what exists, through the counters registered per
type (``register_counter``); other resource families register theirs.
"""

from __future__ import annotations

import enum
from typing import Callable

import pluggy
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..errors import ResourceLimitError
from ..globalconfig import ConfigKey
from ..model import (
    Account,
    AccountType,
    Configuration,
    Domain,
    Network,
    Project,
    ResourceCount,
    ResourceLimit,
    ServiceOffering,
    Template,
    TemplateStoreRef,
    VirtualMachine,
    Volume,
)

hookimpl = pluggy.HookimplMarker("strato")
GiB = 1024**3
UNLIMITED = -1


class ResourceType(enum.IntEnum):
    """CloudStack's Resource.ResourceType numbers."""

    USER_VM = 0
    PUBLIC_IP = 1
    VOLUME = 2
    SNAPSHOT = 3
    TEMPLATE = 4
    PROJECT = 5
    NETWORK = 6
    VPC = 7
    CPU = 8
    MEMORY = 9
    PRIMARY_STORAGE = 10
    SECONDARY_STORAGE = 11

    @property
    def api_name(self) -> str:
        return self.name.lower()


STORAGE = frozenset({ResourceType.PRIMARY_STORAGE, ResourceType.SECONDARY_STORAGE})

#: the global default limit of each type: (account setting, project setting, default value)
DEFAULTS = {
    ResourceType.USER_VM: ("user.vms", "20"), ResourceType.PUBLIC_IP: ("public.ips", "20"),
    ResourceType.VOLUME: ("volumes", "20"), ResourceType.SNAPSHOT: ("snapshots", "20"),
    ResourceType.TEMPLATE: ("templates", "20"), ResourceType.PROJECT: ("projects", "10"),
    ResourceType.NETWORK: ("networks", "20"), ResourceType.VPC: ("vpcs", "20"),
    ResourceType.CPU: ("cpus", "40"), ResourceType.MEMORY: ("memory", "40960"),
    ResourceType.PRIMARY_STORAGE: ("primary.storage", "200"), ResourceType.SECONDARY_STORAGE: ("secondary.storage", "400"),
}
UNITS = {ResourceType.MEMORY: "MiB", ResourceType.PRIMARY_STORAGE: "GiB", ResourceType.SECONDARY_STORAGE: "GiB"}

CONFIG_KEYS = [
    ConfigKey(f"max.{owner}.{suffix}", "Account Defaults" if owner == "account" else "Project Defaults", default,
              f"The default maximum number of {ResourceType(rtype).api_name} a{' project' if owner == 'project' else 'n account'}"
              f" may have{' (' + UNITS[rtype] + ')' if rtype in UNITS else ''}; -1 is unlimited", "Integer")
    for rtype, (suffix, default) in DEFAULTS.items() for owner in ("account", "project")
]


@hookimpl
def strato_configuration_keys():
    return CONFIG_KEYS


# -- limits ------------------------------------------------------------------------


def to_count_units(rtype: ResourceType, maximum: int) -> int:
    """A limit in the API's unit -> the count's unit."""
    return maximum * GiB if maximum != UNLIMITED and rtype in STORAGE else maximum


def account_limit(session: Session, account: Account, rtype: ResourceType) -> int:
    """The limit in force for ``account`` (API unit; -1 unlimited)."""
    if account.account_type == AccountType.ROOT_ADMIN:
        return UNLIMITED
    explicit = session.scalar(select(ResourceLimit.max).where(ResourceLimit.account_id == account.id,
                                                              ResourceLimit.resource_type == int(rtype)))
    if explicit is not None:
        return explicit
    owner = "project" if account.account_type == AccountType.PROJECT else "account"
    return _setting(session, f"max.{owner}.{DEFAULTS[rtype][0]}", int(DEFAULTS[rtype][1]))


def domain_limit(session: Session, domain: Domain, rtype: ResourceType) -> int:
    """The limit in force for ``domain``: its own, else its nearest ancestor's; ROOT is unlimited."""
    chain = _domain_chain(session, domain)
    explicit = dict(session.execute(select(ResourceLimit.domain_id, ResourceLimit.max).where(
        ResourceLimit.domain_id.in_([d.id for d in chain]), ResourceLimit.resource_type == int(rtype))).all())
    for each in chain:
        if each.parent_id is None:
            return UNLIMITED
        if each.id in explicit:
            return explicit[each.id]
    return UNLIMITED


def set_limit(session: Session, rtype: ResourceType, maximum: int, *, account: Account | None = None,
              domain: Domain | None = None) -> None:
    """Record an explicit limit (``updateResourceLimit``)."""
    owner = (ResourceLimit.account_id == account.id) if account is not None else (ResourceLimit.domain_id == domain.id)
    row = session.scalar(select(ResourceLimit).where(owner, ResourceLimit.resource_type == int(rtype)))
    if row is None:
        row = ResourceLimit(account_id=account.id if account is not None else None,
                            domain_id=domain.id if domain is not None else None, resource_type=int(rtype))
        session.add(row)
    row.max = maximum
    session.flush()


def _setting(session: Session, name: str, default: int) -> int:
    row = session.get(Configuration, name)
    try:
        return int(row.value) if row is not None and row.value not in (None, "") else default
    except ValueError:
        return default


def _domain_chain(session: Session, domain: Domain) -> list[Domain]:
    """``domain`` and its ancestors, deepest first."""
    chain = [domain]
    while chain[-1].parent_id is not None:
        chain.append(session.get(Domain, chain[-1].parent_id))
    return chain


# -- counts --------------------------------------------------------------------------


def ensure_rows(session: Session, *, account_id: int | None = None, domain_id: int | None = None) -> None:
    """Make the count rows (at 0) of every type for a new account or domain, in the transaction
    that creates it: then ``reserve`` only ever UPDATEs, which concurrent deploys can do
    without the insert races (MariaDB deadlocks) that making rows on first use would have."""
    owner = (ResourceCount.account_id == account_id) if account_id is not None else (ResourceCount.domain_id == domain_id)
    present = set(session.scalars(select(ResourceCount.resource_type).where(owner)))
    session.add_all(ResourceCount(account_id=account_id, domain_id=domain_id, resource_type=int(rtype), count=0)
                    for rtype in ResourceType if int(rtype) not in present)
    session.flush()


def seed(session: Session) -> None:
    """Count rows for every live domain and account that lacks them (bootstrap; idempotent)."""
    have_domains = set(session.scalars(select(ResourceCount.domain_id).where(ResourceCount.domain_id.is_not(None))
                                       .group_by(ResourceCount.domain_id)
                                       .having(func.count() >= len(ResourceType))))
    have_accounts = set(session.scalars(select(ResourceCount.account_id).where(ResourceCount.account_id.is_not(None))
                                        .group_by(ResourceCount.account_id)
                                        .having(func.count() >= len(ResourceType))))
    for domain_id in session.scalars(select(Domain.id).where(Domain.removed.is_(None))):
        if domain_id not in have_domains:
            ensure_rows(session, domain_id=domain_id)
    for account_id in session.scalars(select(Account.id).where(Account.removed.is_(None))):
        if account_id not in have_accounts:
            ensure_rows(session, account_id=account_id)


def _row_id(session: Session, rtype: ResourceType, *, account_id: int | None = None,
            domain_id: int | None = None) -> int:
    """The id of the count row of this owner and type, made (at 0) when missing (an account made
    without ``ensure_rows``)."""
    owner = (ResourceCount.account_id == account_id) if account_id is not None else (ResourceCount.domain_id == domain_id)
    query = select(ResourceCount.id).where(owner, ResourceCount.resource_type == int(rtype))
    row_id = session.scalar(query)
    if row_id is not None:
        return row_id
    try:
        with session.begin_nested():  # another transaction may be making the same row
            session.add(ResourceCount(account_id=account_id, domain_id=domain_id, resource_type=int(rtype), count=0))
    except IntegrityError:
        pass
    return session.scalar(query)


def reserve(session: Session, account: Account, rtype: ResourceType, amount: int) -> None:
    """Add ``amount`` to the counts of ``account`` and its domains; ``ResourceLimitError`` (532)
    when that would pass a limit of any of them (the caller's transaction must then roll back)."""
    reserve_many(session, account, {rtype: amount})


def reserve_many(session: Session, account: Account, amounts: dict[ResourceType, int], *,
                 check: bool = True) -> None:
    """``reserve`` for several types at once (a VM: instances, CPUs, memory, volumes, storage).
    With ``check=False`` the counts grow whatever the limits (what already happened, such as a
    finished download, is counted, not refused)."""
    domains = _domain_chain(session, session.get(Domain, account.domain_id))
    for rtype in sorted(amounts):
        amount = int(amounts[rtype])
        if amount == 0:
            continue
        if amount < 0:
            release(session, account, rtype, -amount)
            continue
        limit = account_limit(session, account, rtype) if check else UNLIMITED
        _add(session, _row_id(session, rtype, account_id=account.id), amount, to_count_units(rtype, limit),
             lambda: _exceeded(session, rtype, account=account))
        for domain in domains:
            limit = domain_limit(session, domain, rtype) if check else UNLIMITED
            _add(session, _row_id(session, rtype, domain_id=domain.id), amount, to_count_units(rtype, limit),
                 lambda domain=domain: _exceeded(session, rtype, domain=domain))


def release(session: Session, account: Account | int, rtype: ResourceType, amount: int) -> None:
    """Take ``amount`` off the counts of the account and its domains (never below zero)."""
    if amount <= 0:
        return
    if isinstance(account, int):
        account = session.get(Account, account)
    domains = _domain_chain(session, session.get(Domain, account.domain_id))
    ids = [_row_id(session, rtype, account_id=account.id)] + [_row_id(session, rtype, domain_id=d.id) for d in domains]
    for row_id in ids:
        session.execute(update(ResourceCount).where(ResourceCount.id == row_id).values(
            count=case((ResourceCount.count >= amount, ResourceCount.count - amount), else_=0))
            .execution_options(synchronize_session=False))


def release_many(session: Session, account: Account | int, amounts: dict[ResourceType, int]) -> None:
    for rtype in sorted(amounts):
        release(session, account, rtype, int(amounts[rtype]))


def _add(session: Session, row_id: int, amount: int, limit: int, refuse) -> None:
    statement = update(ResourceCount).where(ResourceCount.id == row_id)
    if limit != UNLIMITED:
        statement = statement.where(ResourceCount.count + amount <= limit)
    result = session.execute(statement.values(count=ResourceCount.count + amount)
                             .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        refuse()


def _exceeded(session: Session, rtype: ResourceType, *, account: Account | None = None,
              domain: Domain | None = None):
    if account is not None:
        project = session.scalar(select(Project).where(Project.project_account_id == account.id)) \
            if account.account_type == AccountType.PROJECT else None
        domain_row = session.get(Domain, account.domain_id)
        who = f"project name={project.name}" if project is not None else f"account name={account.name}"
        raise ResourceLimitError(f"Maximum number of resources of type '{rtype.api_name}' for {who} in domain "
                                 f"id={domain_row.uuid} has been exceeded.")
    raise ResourceLimitError(f"Maximum number of resources of type '{rtype.api_name}' for domain id={domain.uuid} "
                             f"has been exceeded.")


def count_of(session: Session, rtype: ResourceType, *, account: Account | None = None,
             domain: Domain | None = None) -> int:
    """The count now (count units)."""
    owner = (ResourceCount.account_id == account.id) if account is not None else (ResourceCount.domain_id == domain.id)
    return session.scalar(select(ResourceCount.count).where(owner, ResourceCount.resource_type == int(rtype))) or 0


def check_room(session: Session, account: Account, rtype: ResourceType, amount: int = 0) -> None:
    """532 unless the account and its domains could take ``amount`` more; with 0 (a size only
    known later, such as a template's before its download), unless they are below their limits.
    Nothing is reserved."""
    def over(count: int, limit: int) -> bool:
        if limit == UNLIMITED:
            return False
        limit = to_count_units(rtype, limit)
        return count + amount > limit if amount else count >= limit

    if over(count_of(session, rtype, account=account), account_limit(session, account, rtype)):
        _exceeded(session, rtype, account=account)
    for domain in _domain_chain(session, session.get(Domain, account.domain_id)):
        if over(count_of(session, rtype, domain=domain), domain_limit(session, domain, rtype)):
            _exceeded(session, rtype, domain=domain)


# -- what a VM holds --------------------------------------------------------------------


def vm_amounts(offering: ServiceOffering, root_size: int) -> dict[ResourceType, int]:
    """What one VM with its root volume counts against."""
    return {ResourceType.USER_VM: 1, ResourceType.CPU: offering.cpu_number, ResourceType.MEMORY: offering.memory,
            ResourceType.VOLUME: 1, ResourceType.PRIMARY_STORAGE: root_size}


def change_offering(session: Session, account: Account, old: ServiceOffering, new: ServiceOffering) -> None:
    """A VM moves from ``old`` to ``new``: reserve the growth (532 beyond a limit), release the shrink."""
    reserve_many(session, account, {ResourceType.CPU: new.cpu_number - old.cpu_number,
                                    ResourceType.MEMORY: new.memory - old.memory})


# -- recounting (updateResourceCount) --------------------------------------------------------

#: per type, the functions counting what an account holds; the results are summed
_COUNTERS: dict[ResourceType, list[Callable[[Session, int], int]]] = {rtype: [] for rtype in ResourceType}


def register_counter(rtype: ResourceType, counter: Callable[[Session, int], int]) -> None:
    """Add ``counter(session, account_id) -> int`` (count units) to what ``recount`` sums for ``rtype``.
    Each resource family registers the counter of what it creates, once, at import."""
    if counter not in _COUNTERS[rtype]:
        _COUNTERS[rtype].append(counter)


def _live_vms(account_id: int):
    return select(VirtualMachine).where(VirtualMachine.account_id == account_id, VirtualMachine.removed.is_(None),
                                        VirtualMachine.vm_type == "User")


def _count_vms(session, account_id):
    return session.scalar(select(func.count()).select_from(_live_vms(account_id).subquery()))


def _vm_sum(column):
    def count(session, account_id):
        live = _live_vms(account_id).subquery()
        return session.scalar(select(func.coalesce(func.sum(column), 0)).select_from(live).join(
            ServiceOffering, ServiceOffering.id == live.c.service_offering_id))
    return count


def _count_volumes(session, account_id):
    return session.scalar(select(func.count(Volume.id)).where(Volume.account_id == account_id, Volume.removed.is_(None)))


def _volume_bytes(session, account_id):
    return session.scalar(select(func.coalesce(func.sum(Volume.size), 0)).where(
        Volume.account_id == account_id, Volume.removed.is_(None)))


def _user_templates(account_id: int):
    return (Template.account_id == account_id, Template.removed.is_(None),
            Template.template_type.not_in(("SYSTEM", "BUILTIN")))


def _count_templates(session, account_id):
    return session.scalar(select(func.count(Template.id)).where(*_user_templates(account_id)))


def _template_bytes(session, account_id):
    return session.scalar(select(func.coalesce(func.sum(TemplateStoreRef.size), 0))
                          .join(Template, Template.id == TemplateStoreRef.template_id)
                          .where(*_user_templates(account_id)))


def _count_networks(session, account_id):
    # as networking.counts_as_network: an account's networks of offerings without specifyvlan
    from ..model import NetworkOffering

    return session.scalar(select(func.count(Network.id)).outerjoin(
        NetworkOffering, NetworkOffering.id == Network.network_offering_id).where(
        Network.account_id == account_id, Network.removed.is_(None),
        or_(Network.acl_type.is_(None), Network.acl_type != "Domain"),
        or_(NetworkOffering.specify_vlan.is_(None), NetworkOffering.specify_vlan.is_(False))))


def _count_projects(session, account_id):
    from ..model import ProjectAccount, ProjectMemberRole

    return session.scalar(select(func.count(Project.id)).join(ProjectAccount, ProjectAccount.project_id == Project.id)
                          .where(ProjectAccount.account_id == account_id, ProjectAccount.role == ProjectMemberRole.ADMIN,
                                 Project.removed.is_(None)))


for _rtype, _counter in ((ResourceType.USER_VM, _count_vms), (ResourceType.CPU, _vm_sum(ServiceOffering.cpu_number)),
                         (ResourceType.MEMORY, _vm_sum(ServiceOffering.memory)),
                         (ResourceType.VOLUME, _count_volumes), (ResourceType.PRIMARY_STORAGE, _volume_bytes),
                         (ResourceType.TEMPLATE, _count_templates), (ResourceType.SECONDARY_STORAGE, _template_bytes),
                         (ResourceType.NETWORK, _count_networks), (ResourceType.PROJECT, _count_projects)):
    register_counter(_rtype, _counter)


def recount(session: Session, domain: Domain, *, account: Account | None = None,
            types: list[ResourceType] | None = None) -> None:
    """Set the counts of ``account`` (else of every account in ``domain`` and below) to what they
    hold, then every domain's count of ``domain``'s subtree and its ancestors to the sum of its
    accounts'. The count rows are locked first, so a creation running meanwhile is not lost."""
    types = list(types or ResourceType)
    subtree = list(session.scalars(select(Domain).where(Domain.path.startswith(domain.path))))
    if account is not None:
        accounts = [account]
    else:
        accounts = list(session.scalars(select(Account).where(
            Account.domain_id.in_([d.id for d in subtree]), Account.removed.is_(None))))
    ancestors = _domain_chain(session, domain)[1:]
    for rtype in sorted(types):
        rows = [_row_id(session, rtype, account_id=a.id) for a in accounts]
        rows += [_row_id(session, rtype, domain_id=d.id) for d in subtree + ancestors]
        list(session.scalars(select(ResourceCount.id).where(ResourceCount.id.in_(rows))
                             .order_by(ResourceCount.id).with_for_update()))
        for each in accounts:
            held = sum(int(counter(session, each.id) or 0) for counter in _COUNTERS[rtype])
            session.execute(update(ResourceCount).where(ResourceCount.account_id == each.id,
                                                        ResourceCount.resource_type == int(rtype)).values(count=held))
        for each in subtree + ancestors:
            under = select(Account.id).join(Domain, Domain.id == Account.domain_id).where(
                Domain.path.startswith(each.path), Account.removed.is_(None))
            total = session.scalar(select(func.coalesce(func.sum(ResourceCount.count), 0)).where(
                ResourceCount.account_id.in_(under), ResourceCount.resource_type == int(rtype)))
            session.execute(update(ResourceCount).where(ResourceCount.domain_id == each.id,
                                                        ResourceCount.resource_type == int(rtype)).values(count=total))


__all__ = ["ResourceType", "ensure_rows", "seed", "reserve", "reserve_many", "release", "release_many", "check_room", "register_counter",
           "recount", "account_limit", "domain_limit", "set_limit", "count_of", "vm_amounts", "UNLIMITED"]

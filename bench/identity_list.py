"""listVirtualMachines as a domain admin over 1,000 accounts in a deep domain tree with
20,000 VMs, against the same list as the root admin (the ratio is what the domain rules
cost). Usage: python bench/identity_list.py [--accounts N] [--vms-per-account N]
[--depth N] [--fanout N] [--db URL]"""

from __future__ import annotations

import argparse
import uuid

from common import best_of, report, scratch_cloud
from sqlalchemy import insert, select, text

from api.app import create_app
from api.inprocess import InProcessClient, user_keys
from core.model import (
    Account,
    AccountType,
    Domain,
    Network,
    Nic,
    ServiceOffering,
    Template,
    User,
    VirtualMachine,
    Volume,
    utcnow,
)
from tests.core.factories import simulated_zone


def build_tree(session, depth: int, fanout: int) -> list[Domain]:
    """/org/ and ``depth`` levels of ``fanout`` children below it; every domain, parents first."""
    root = session.scalar(select(Domain).where(Domain.parent_id.is_(None)))
    org = Domain(name="org", parent_id=root.id, path="/org/", level=1)
    session.add(org)
    session.flush()
    domains, level = [org], [org]
    for _ in range(depth):
        rows = [dict(uuid=str(uuid.uuid4()), name=f"d{i}", parent_id=parent.id, path=f"{parent.path}d{i}/",
                     level=parent.level + 1, state="Active", created=utcnow())
                for parent in level for i in range(fanout)]
        session.execute(insert(Domain), rows)
        level = list(session.scalars(select(Domain).where(Domain.level == level[0].level + 1)))
        domains += level
    return domains


def populate(cloud, accounts: int, per_account: int, depth: int, fanout: int) -> dict:
    zone = simulated_zone(cloud)
    with cloud.db.transaction() as session:
        domains = build_tree(session, depth, fanout)
        now = utcnow()
        session.execute(insert(Account), [dict(uuid=str(uuid.uuid4()), name=f"acct{i}", account_type=AccountType.USER,
                                               domain_id=domains[i % len(domains)].id, state="enabled",
                                               removed_marker=0, created=now) for i in range(accounts)])
        owners = list(session.execute(select(Account.id, Account.domain_id).where(Account.name.like("acct%"))))
        boss = Account(name="orgadmin", account_type=AccountType.DOMAIN_ADMIN, domain_id=domains[0].id)
        middle = domains[1 + fanout]  # a domain two levels below /org/
        mid_boss = Account(name="midadmin", account_type=AccountType.DOMAIN_ADMIN, domain_id=middle.id)
        session.add_all([boss, mid_boss])
        session.flush()
        for account in (boss, mid_boss):
            session.add(User(username=account.name, password_hash="!", account_id=account.id,
                             domain_id=account.domain_id, firstname="B", lastname="A"))
        offering = session.scalar(select(ServiceOffering).limit(1))
        template = session.scalar(select(Template).where(Template.uuid == zone["template"]))
        zone_id = session.scalar(text("select id from zone limit 1"))
        network = Network(name="bench", zone_id=zone_id, cidr="10.0.0.0/8", gateway="10.0.0.1", netmask="255.0.0.0")
        session.add(network)
        session.flush()
        vms = [dict(uuid=str(uuid.uuid4()), name=f"vm{a}-{i}", display_name=f"vm{a}-{i}",
                    instance_name=f"i-{a}-{i}-VM", state="Running", account_id=a, domain_id=d, zone_id=zone_id,
                    service_offering_id=offering.id, template_id=template.id, created=now, updated=now, details={},
                    version=0, vm_type="User", power_state="PowerOn", reserved_cpu=0, reserved_memory=0,
                    ha_enabled=False) for a, d in owners for i in range(per_account)]
        for start in range(0, len(vms), 5000):
            session.execute(insert(VirtualMachine), vms[start:start + 5000])
        rows = session.execute(select(VirtualMachine.id, VirtualMachine.account_id, VirtualMachine.domain_id)
                               .order_by(VirtualMachine.id)).all()
        session.execute(insert(Nic), [dict(uuid=str(uuid.uuid4()), vm_id=vm_id, network_id=network.id, device_id=0,
                                          is_default=True, mac_address=f"02:00:{vm_id >> 16 & 255:02x}:"
                                          f"{vm_id >> 8 & 255:02x}:{vm_id & 255:02x}:00",
                                          ip_address=f"10.{vm_id >> 16 & 255}.{vm_id >> 8 & 255}.{vm_id & 255}",
                                          created=now, state="Reserved") for vm_id, _, _ in rows])
        session.execute(insert(Volume), [dict(uuid=str(uuid.uuid4()), name=f"ROOT-{vm_id}", vm_id=vm_id,
                                             account_id=a, domain_id=d, zone_id=zone_id, volume_type="ROOT",
                                             device_id=0, size=2**31, state="Ready", format="QCOW2", created=now,
                                             version=0) for vm_id, a, d in rows])
        under_middle = session.scalar(text(
            "SELECT COUNT(*) FROM vm_instance v JOIN domain d ON d.id = v.domain_id WHERE d.path LIKE :p"),
            {"p": f"{middle.path}%"})
        return {"domains": len(domains), "vms": len(rows), "middle": middle.path, "under_middle": under_middle}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--vms-per-account", type=int, default=20)
    parser.add_argument("--depth", type=int, default=4, help="levels of domains below /org/")
    parser.add_argument("--fanout", type=int, default=5, help="children of each domain")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a scratch SQLite file)")
    args = parser.parse_args()
    cloud = scratch_cloud(args.db)
    print(f"populating {args.accounts} accounts x {args.vms_per_account} VMs in a tree of depth {args.depth + 1}, "
          f"fan-out {args.fanout}, on {cloud.db.engine.dialect.name} ...")
    shape = populate(cloud, args.accounts, args.vms_per_account, args.depth, args.fanout)
    print(f"  {shape['domains']} domains, {shape['vms']} VMs; {shape['under_middle']} of them below {shape['middle']}")
    app = create_app(cloud)
    clients = {name: InProcessClient(app, *user_keys(cloud, name)) for name in ("admin", "orgadmin", "midadmin")}

    def page(name: str, expected: int):
        def run():
            body = clients[name]("listVirtualMachines", listall=True, pagesize=500, page=1)
            assert body.get("count", 0) == expected
            assert len(body.get("virtualmachine", [])) == min(500, expected)
        return run

    rows = [("root admin, listall (every VM)", best_of(page("admin", shape["vms"]))),
            ("domain admin of /org/ (the same VMs)", best_of(page("orgadmin", shape["vms"]))),
            (f"domain admin of {shape['middle']} ({shape['under_middle']} VMs)",
             best_of(page("midadmin", shape["under_middle"])))]
    report(f"listVirtualMachines, first page of 500, {shape['vms']} VMs of {args.accounts} accounts in "
           f"{shape['domains']} domains", rows, baseline="root admin, listall (every VM)")
    cloud.close()


if __name__ == "__main__":
    main()

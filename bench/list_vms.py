"""listVirtualMachines (pagesize 500) over 20,000 VMs against the bare SQL query that
returns the same rows. Usage: python bench/list_vms.py [--vms N] [--db URL]"""

from __future__ import annotations

import argparse
import uuid

from common import best_of, report, scratch_cloud
from sqlalchemy import insert, select, text

from api.app import create_app
from api.inprocess import InProcessClient, user_keys
from core.model import Account, Network, Nic, ServiceOffering, Template, VirtualMachine, Volume, utcnow
from tests.core.factories import simulated_zone


def populate(cloud, count: int) -> None:
    zone = simulated_zone(cloud)
    with cloud.db.transaction() as session:
        account = session.scalar(select(Account).where(Account.name == "admin"))
        offering = session.scalar(select(ServiceOffering).limit(1))
        template = session.scalar(select(Template).where(Template.uuid == zone["template"]))
        network = Network(name="bench", zone_id=template.account_id and session.scalar(
            text("select id from zone limit 1")), cidr="10.0.0.0/8", gateway="10.0.0.1", netmask="255.0.0.0")
        session.add(network)
        session.flush()
        now = utcnow()
        vms = [dict(uuid=str(uuid.uuid4()), name=f"vm{i}", display_name=f"vm{i}", instance_name=f"i-2-{i}-VM",
                    state="Running", account_id=account.id, domain_id=account.domain_id, zone_id=network.zone_id,
                    service_offering_id=offering.id, template_id=template.id, created=now, updated=now,
                    details={}, version=0, vm_type="User", power_state="PowerOn", reserved_cpu=0,
                    reserved_memory=0, ha_enabled=False) for i in range(count)]
        session.execute(insert(VirtualMachine), vms)
        ids = session.scalars(select(VirtualMachine.id).order_by(VirtualMachine.id)).all()
        session.execute(insert(Nic), [dict(uuid=str(uuid.uuid4()), vm_id=vm_id, network_id=network.id, device_id=0,
                                          is_default=True, mac_address=f"02:00:{vm_id >> 16 & 255:02x}:"
                                          f"{vm_id >> 8 & 255:02x}:{vm_id & 255:02x}:00",
                                          ip_address=f"10.{vm_id >> 16 & 255}.{vm_id >> 8 & 255}.{vm_id & 255}",
                                          created=now, state="Reserved") for vm_id in ids])
        session.execute(insert(Volume), [dict(uuid=str(uuid.uuid4()), name=f"ROOT-{vm_id}", vm_id=vm_id,
                                             account_id=account.id, domain_id=account.domain_id,
                                             zone_id=network.zone_id, volume_type="ROOT", device_id=0, size=2**31,
                                             state="Ready", format="QCOW2", created=now, version=0)
                                        for vm_id in ids])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=20_000)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a scratch SQLite file)")
    args = parser.parse_args()
    cloud = scratch_cloud(args.db)
    print(f"populating {args.vms} VMs on {cloud.db.engine.dialect.name} ...")
    populate(cloud, args.vms)
    admin = InProcessClient(create_app(cloud), *user_keys(cloud, "admin"))

    def api_page():
        body = admin("listVirtualMachines", listall=True, pagesize=500, page=7)
        assert len(body["virtualmachine"]) == 500 and body["count"] == args.vms

    bare = text("SELECT v.uuid, v.name, v.display_name, v.state, n.ip_address, n.mac_address, o.name, t.name "
                "FROM vm_instance v JOIN nic n ON n.vm_id = v.id JOIN service_offering o ON o.id = "
                "v.service_offering_id JOIN template t ON t.id = v.template_id WHERE v.removed IS NULL "
                "ORDER BY v.id LIMIT 500 OFFSET 3000")

    def sql_page():
        with cloud.db.engine.connect() as conn:
            assert len(conn.execute(bare).all()) == 500
            conn.execute(text("SELECT COUNT(*) FROM vm_instance WHERE removed IS NULL")).scalar()

    report(f"listVirtualMachines, page 7 of 500 over {args.vms} VMs",
           [("bare SQL (rows + count)", best_of(sql_page)), ("Strato API (signed, JSON)", best_of(api_page))],
           baseline="bare SQL (rows + count)")
    cloud.close()


if __name__ == "__main__":
    main()

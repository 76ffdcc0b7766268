"""What a fresh installation holds, as CloudStack ships it: the ROOT domain,
the system and admin accounts (``admin`` / ``password``), OS types and the
default offerings. Idempotent: only what is missing is added."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .model import Account, AccountType, DiskOffering, Domain, OsCategory, OsType, ServiceOffering, User
from .passwords import hash_password

GiB = 1024**3

OS_TYPES = {
    "Debian": ["Debian GNU/Linux 12 (64-bit)", "Debian GNU/Linux 11 (64-bit)"],
    "Ubuntu": ["Ubuntu 22.04 LTS", "Ubuntu 24.04 LTS"],
    "CentOS": ["CentOS 7", "Rocky Linux 9"],
    "Windows": ["Windows Server 2022 (64-bit)"],
    "Other": ["Other Linux (64-bit)", "Other (64-bit)"],
}

SERVICE_OFFERINGS = [
    ("Small Instance", "Small Instance", 1, 500, 512),
    ("Medium Instance", "Medium Instance", 1, 1000, 1024),
]

DISK_OFFERINGS = [
    ("Small", "Small Disk, 5 GB", 5 * GiB, False),
    ("Medium", "Medium Disk, 20 GB", 20 * GiB, False),
    ("Large", "Large Disk, 100 GB", 100 * GiB, False),
    ("Custom", "Custom Disk", 0, True),
]


def bootstrap(session: Session) -> None:
    root = session.scalar(select(Domain).where(Domain.parent_id.is_(None)))
    if root is None:
        root = Domain(name="ROOT", path="/", level=0)
        session.add(root)
        session.flush()
        system = Account(name="system", account_type=AccountType.ROOT_ADMIN, domain_id=root.id)
        admin = Account(name="admin", account_type=AccountType.ROOT_ADMIN, domain_id=root.id)
        session.add_all([system, admin])
        session.flush()
        session.add_all([
            User(username="system", password_hash="!", account_id=system.id, domain_id=root.id,
                 firstname="system", lastname="cloud", is_default=True),
            User(username="admin", password_hash=hash_password("password"), account_id=admin.id,
                 domain_id=root.id, firstname="Admin", lastname="User", is_default=True),
        ])
    from . import roles

    roles.seed(session)  # the four default roles; accounts without a role get their type's
    from .orchestration import limits

    limits.seed(session)  # resource count rows of every domain and account
    if session.scalar(select(OsCategory.id).limit(1)) is None:
        for category_name, descriptions in OS_TYPES.items():
            category = OsCategory(name=category_name)
            session.add(category)
            session.flush()
            session.add_all(OsType(description=d, category_id=category.id) for d in descriptions)
    if session.scalar(select(ServiceOffering.id).limit(1)) is None:
        session.add_all(ServiceOffering(name=n, display_text=t, cpu_number=c, cpu_speed=s, memory=m)
                        for n, t, c, s, m in SERVICE_OFFERINGS)
        session.add_all(DiskOffering(name=n, display_text=t, disk_size=size, customized=custom)
                        for n, t, size, custom in DISK_OFFERINGS)
    from .orchestration.networking import seed_network_offerings

    seed_network_offerings(session)  # CloudStack's default network offerings

"""An Advanced zone for the router's tests: compute and storage from the core factories
(simulated hosts), networking through the API as an admin (or Ansible) builds it."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from tests.core.factories import simulated_zone

from .world import PUBLIC_GATEWAY


@dataclasses.dataclass
class Zone:
    id: str
    template: str
    physical_network: str
    public_range: str


def advanced_zone(cloud, admin, world, *, start: str = "198.51.100.10", end: str = "198.51.100.30",
                  guest_vlans: str | None = None, guest_uplink: str | None = None,
                  isolation: str = "VLAN", public_bridge: str | None = None, public_vlan: str = "untagged") -> Zone:
    from core.model import Zone as ZoneRow

    ids = simulated_zone(cloud)
    with cloud.db.transaction() as session:
        zone = session.scalars(sa.select(ZoneRow).where(ZoneRow.uuid == ids["zone"])).one()
        zone.network_type, zone.guest_cidr, zone.dns1 = "Advanced", "10.1.1.0/24", "127.0.0.1"
    physical = admin.wait(admin("createPhysicalNetwork", zoneid=ids["zone"], name="physical-1",
                                isolationmethods=isolation, vlan=guest_vlans))["physicalnetwork"]
    admin.wait(admin("addTrafficType", physicalnetworkid=physical["id"], traffictype="Guest",
                     kvmnetworklabel=guest_uplink))
    admin.wait(admin("addTrafficType", physicalnetworkid=physical["id"], traffictype="Public",
                     kvmnetworklabel=public_bridge or world.public_bridge))
    admin.wait(admin("updatePhysicalNetwork", id=physical["id"], state="Enabled"))
    public = admin("createVlanIpRange", zoneid=ids["zone"], forvirtualnetwork=True, vlan=public_vlan,
                   gateway=PUBLIC_GATEWAY, netmask="255.255.255.0", startip=start, endip=end)["vlan"]
    return Zone(ids["zone"], ids["template"], physical["id"], public["id"])


def network_row(cloud, network_uuid: str) -> dict:
    """(bridge, state, router state, router error) of a network, from the database."""
    from core.model import Network, Router

    with cloud.db.transaction() as session:
        network = session.scalars(sa.select(Network).where(Network.uuid == network_uuid)).one()
        router = session.scalars(sa.select(Router).where(Router.network_id == network.id)).first()
        return {"bridge": (network.details or {}).get("bridge"), "state": network.state, "vlan": network.vlan,
                "router": router.state if router else None, "error": router.last_error if router else None}

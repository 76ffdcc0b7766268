"""deleteAccount with a real router: after the account's VMs go, its VPN users, VPN, rules,
static NAT, addresses (the source-NAT one a router took too) and networks go through the
normal operations, so the router's namespace, bridge and processes leave the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ApiClient

from .test_api_packets import deploy
from .world import sh
from .zone import advanced_zone

pytestmark = pytest.mark.usefixtures("vr_host")


def processes_naming(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (a router's state directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in line:
                found.append(line)
    return found


def test_delete_account_tears_its_routers_down_and_frees_everything(vr_cloud, vr_app, vr_admin, world):
    zone = advanced_zone(vr_cloud, vr_admin, world)
    account = vr_admin("createAccount", username="leaver", password="pw", email="l@example.com", firstname="L",
                       lastname="T", accounttype=0)["account"]
    keys = vr_admin("registerUserKeys", id=account["user"][0]["id"])["userkeys"]
    tenant = ApiClient(vr_app, keys["apikey"], keys["secretkey"])
    vm = deploy(vr_cloud, tenant, zone, "web1")
    network_id = vm["nic"][0]["networkid"]
    ip = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    natted = tenant.wait(tenant("associateIpAddress", networkid=network_id))["ipaddress"]
    tenant.wait(tenant("createPortForwardingRule", ipaddressid=ip["id"], protocol="tcp", publicport=2222,
                       privateport=22, virtualmachineid=vm["id"]))
    tenant("enableStaticNat", ipaddressid=natted["id"], virtualmachineid=vm["id"])
    tenant.wait(tenant("createRemoteAccessVpn", publicipid=ip["id"]))
    tenant.wait(tenant("addVpnUser", username="u1", password="secret1"))
    vr_cloud.jobs.join()
    mine = tenant("listAccounts")["account"][0]
    assert (mine["iptotal"], mine["networktotal"]) == (3, 1), "the router's source-NAT address counts too"
    element = vr_cloud.plugins.network["vr"]
    names, state = element.ex_names(network_id), element.ex_router(network_id).state
    assert names.namespace in sh("ip", "netns", "list").stdout
    assert any("dnsmasq" in line for line in processes_naming(str(state)))

    vr_admin.wait(vr_admin("deleteAccount", id=account["id"]), timeout=60)
    vr_cloud.jobs.join()

    assert names.namespace not in sh("ip", "netns", "list").stdout
    assert sh("ip", "link", "show", names.bridge, check=False).returncode != 0
    assert processes_naming(str(state)) == [], "no dnsmasq, haproxy or OpenVPN of the router is left"
    assert vr_admin("listRouters", listall=True) == {}
    assert vr_admin("listNetworks", listall=True, id=network_id) == {}
    assert vr_admin("listPublicIpAddresses", listall=True) == {}
    free = {a["ipaddress"] for a in vr_admin("listPublicIpAddresses", allocatedonly=False,
                                             state="Free")["publicipaddress"]}
    assert {"198.51.100.10", "198.51.100.11", "198.51.100.12"} <= free
    root = vr_admin("listDomains", name="ROOT")["domain"][0]
    assert (root["iptotal"], root["networktotal"], root["vmtotal"]) == (0, 0, 0)

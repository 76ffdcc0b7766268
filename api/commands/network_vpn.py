"""Remote-access VPN: createRemoteAccessVpn, deleteRemoteAccessVpn, listRemoteAccessVpns,
addVpnUser, removeVpnUser, listVpnUsers.

The router runs OpenVPN (see plugins/network_vr/openvpn.py for why not L2TP/IPsec): a
client needs the pre-shared key, a VPN user's name and password, and pins the server
certificate's fingerprint (``certificatefingerprint`` in listRemoteAccessVpns). VPN users
belong to an account and work on every VPN of it.
"""

from __future__ import annotations

import ipaddress
import logging

from sqlalchemy import select

from api.views.network_rules import VPN_FIELDS, VPN_USER_FIELDS, vpn_user_view, vpn_view
from core.commands import ALL_ROLES, P, api_command
from core.errors import InvalidParameterError, NetworkRuleConflictError, StratoError
from core.jobs import job_handler
from core.model import Network, RemoteAccessVpn, RuleState, VpnUser
from core.orchestration import networking
from core.passwords import hash_password

from .network_ips import owned_address
from .network_rules import render, rule_network, start_rules_job
from .networks import owner_of
from .zones import invalid

log = logging.getLogger(__name__)


def _ip_range(ctx, text: str, network: Network) -> tuple[str, str]:
    try:
        first_text, last_text = text.split("-")
        first, last = ipaddress.IPv4Address(first_text.strip()), ipaddress.IPv4Address(last_text.strip())
    except ValueError:
        raise invalid(ctx, "iprange", f"'{text}' is not a range a.b.c.d-a.b.c.e") from None
    if int(last) - int(first) < 1:
        raise invalid(ctx, "iprange", "the range needs two addresses or more (the first is the server's)")
    if ipaddress.IPv4Network(f"{first}/24", strict=False) != ipaddress.IPv4Network(f"{last}/24", strict=False):
        raise invalid(ctx, "iprange", "the range must lie within one /24")
    guest = ipaddress.IPv4Network(network.cidr)
    if first in guest or last in guest or (first < guest.network_address and last > guest.broadcast_address):
        raise NetworkRuleConflictError(f"the VPN range {first}-{last} overlaps the CIDR {network.cidr} of "
                                       f"network {network.name}")
    return str(first), str(last)


@api_command("createRemoteAccessVpn", response="remoteaccessvpn", is_async=True, roles=ALL_ROLES,
             response_fields=VPN_FIELDS, description="Creates a l2tp/ipsec remote access vpn (here: OpenVPN)", params={
                 "publicipid": P.uuid("public ip address id of the vpn server", required=True),
                 "iprange": P.string("the range of ip addresses to allocate to vpn clients. The first ip in the "
                                     "range will be taken by the vpn server (default 10.1.2.1-10.1.2.8)"),
                 "openfirewall": P.boolean("if true (the default), the VPN port is opened on the address"),
                 "account": P.string("an optional account for the VPN. Must be used with domainId."),
                 "domainid": P.uuid("an optional domainId for the VPN. If the account parameter is used, "
                                    "domainId must also be used."),
                 "fordisplay": P.boolean("an optional field, whether to the display the vpn to the end user or not"),
             })
def create_remote_access_vpn(ctx, p):
    address = owned_address(ctx, p["publicipid"], "publicipid")
    network = rule_network(ctx, address, "Vpn")
    if "account" in p and owner_of(ctx, p).id != address.account_id:
        raise invalid(ctx, "account", "the address belongs to another account")
    if address.is_static_nat:
        raise NetworkRuleConflictError(f"IP {address.address} has static NAT; a VPN cannot be put on it")
    existing = ctx.session.scalar(select(RemoteAccessVpn).where(RemoteAccessVpn.network_id == network.id,
                                                                RemoteAccessVpn.removed.is_(None)))
    if existing is not None:
        raise NetworkRuleConflictError(f"network {network.name} already has remote-access VPN {existing.uuid} on "
                                       f"{existing.ip_address.address}")
    first, last = _ip_range(ctx, p.get("iprange") or networking.DEFAULT_VPN_RANGE, network)
    vpn = RemoteAccessVpn(network_id=network.id, ip_address_id=address.id, account_id=address.account_id,
                          domain_id=address.domain_id, local_ip=first, ip_range=f"{first}-{last}",
                          pre_shared_key=networking.new_pre_shared_key(), state="Added",
                          for_display=p.get("fordisplay", True))
    ctx.session.add(vpn)
    ctx.session.flush()
    ctx.event("VPN.REMOTE.ACCESS.CREATE", f"Created remote-access VPN on {address.address}", vpn)
    return start_rules_job(ctx, network, render={"kind": "vpn", "id": vpn.uuid}, instance=vpn,
                           vpns_added=[vpn.uuid])


@api_command("deleteRemoteAccessVpn", response="success", is_async=True, roles=ALL_ROLES,
             description="Destroys a l2tp/ipsec remote access vpn",
             params={"publicipid": P.uuid("public ip address id of the vpn server", required=True)})
def delete_remote_access_vpn(ctx, p):
    address = owned_address(ctx, p["publicipid"], "publicipid")
    vpn = ctx.session.scalar(select(RemoteAccessVpn).where(RemoteAccessVpn.ip_address_id == address.id))
    if vpn is None or vpn.state == "Removed":
        raise InvalidParameterError(f"IP {address.address} has no remote-access VPN")
    vpn.state = "Removed"
    ctx.event("VPN.REMOTE.ACCESS.DESTROY", f"Deleting remote-access VPN on {address.address}", vpn)
    return start_rules_job(ctx, ctx.session.get(Network, vpn.network_id), render={"kind": "success"},
                           instance=vpn, vpns_revoked=[vpn.uuid])


@api_command("listRemoteAccessVpns", response="remoteaccessvpn", is_list=True, roles=ALL_ROLES,
             response_fields=VPN_FIELDS, description="Lists remote access vpns", params={
                 "id": P.uuid("Lists remote access vpn rule with the specified ID"),
                 "publicipid": P.uuid("public ip address id of the vpn server"),
                 "networkid": P.uuid("list remote access VPNs for certain network"),
                 "fordisplay": P.boolean("list resources by display flag"),
             })
def list_remote_access_vpns(ctx, p):
    query = select(RemoteAccessVpn).where(RemoteAccessVpn.removed.is_(None), RemoteAccessVpn.state != "Removed",
                                          ctx.owner_filter(RemoteAccessVpn, by_id="id" in p or "publicipid" in p))
    if "id" in p:
        query = query.where(RemoteAccessVpn.uuid == p["id"])
    if "publicipid" in p:
        query = query.where(RemoteAccessVpn.ip_address_id == owned_address(ctx, p["publicipid"], "publicipid").id)
    if "networkid" in p:
        query = query.where(RemoteAccessVpn.network_id == ctx.get(Network, p["networkid"], "networkid").id)
    if "fordisplay" in p:
        query = query.where(RemoteAccessVpn.for_display.is_(p["fordisplay"]))
    total, rows = ctx.page(query, order_by=RemoteAccessVpn.id)
    return total, [vpn_view(ctx.session, v) for v in rows]


# -- users --------------------------------------------------------------------------------------


def _username(ctx, text: str) -> str:
    name = text.strip()
    if not name or len(name) > 64 or any(not (c.isalnum() or c in "._-@") for c in name):
        raise invalid(ctx, "username", "a VPN username is 1-64 letters, digits and . _ - @")
    return name


@api_command("addVpnUser", response="vpnuser", is_async=True, roles=ALL_ROLES, response_fields=VPN_USER_FIELDS,
             description="Adds vpn users", params={
                 "username": P.string("username for the vpn user", required=True),
                 "password": P.string("password for the username", required=True),
                 "account": P.string("an optional account for the vpn user. Must be used with domainId."),
                 "domainid": P.uuid("an optional domainId for the vpn user."),
                 "projectid": P.uuid("add vpn user to the specific project"),
             })
def add_vpn_user(ctx, p):
    owner = owner_of(ctx, p)
    username = _username(ctx, p["username"])
    if len(p["password"]) < 6:
        raise invalid(ctx, "password", "a VPN password has at least 6 characters")
    if ctx.session.scalar(select(VpnUser.id).where(VpnUser.account_id == owner.id, VpnUser.username == username)):
        raise invalid(ctx, "username", f"VPN user {username} already exists in account {owner.name}")
    user = VpnUser(account_id=owner.id, domain_id=owner.domain_id, username=username,
                   password_hash=hash_password(p["password"]), state=RuleState.ADD)
    ctx.session.add(user)
    ctx.session.flush()
    ctx.event("VPN.USER.ADD", f"Added VPN user {username}", user)
    return ctx.start_job("vpn.users", {"account": owner.id, "added": [user.uuid], "revoked": [],
                                       "render": {"kind": "vpnuser", "id": user.uuid}},
                         instance=user, instance_type="VpnUser")


@api_command("removeVpnUser", response="success", is_async=True, roles=ALL_ROLES, description="Removes vpn user",
             params={"username": P.string("username for the vpn user", required=True),
                     "account": P.string("an optional account for the vpn user. Must be used with domainId."),
                     "domainid": P.uuid("an optional domainId for the vpn user."),
                     "projectid": P.uuid("remove vpn user from the project")})
def remove_vpn_user(ctx, p):
    owner = owner_of(ctx, p)
    user = ctx.session.scalar(select(VpnUser).where(VpnUser.account_id == owner.id,
                                                    VpnUser.username == p["username"].strip()))
    if user is None or user.state == RuleState.REVOKE:
        raise invalid(ctx, "username", f"account {owner.name} has no VPN user {p['username']}")
    user.state = RuleState.REVOKE
    ctx.event("VPN.USER.REMOVE", f"Removing VPN user {user.username}", user)
    return ctx.start_job("vpn.users", {"account": owner.id, "added": [], "revoked": [user.uuid],
                                       "render": {"kind": "success"}}, instance=user, instance_type="VpnUser")


@job_handler("vpn.users")
def vpn_users_job(ctx):
    """Put the account's VPN users on each of its VPN routers; all or nothing."""
    with ctx.transaction() as session:
        networks = networking.networks_of_account(session, ctx.params["account"])
    changes = {"users_added": ctx.params["added"], "users_revoked": ctx.params["revoked"]}
    try:
        for network_uuid in networks:
            networking.apply(ctx.cloud, network_uuid, caller=ctx.caller, mark_error=False)
    except StratoError:
        networking.settle_changes(ctx.cloud, **changes, success=False)
        for network_uuid in networks:
            try:
                networking.apply(ctx.cloud, network_uuid, caller=ctx.caller)
            except StratoError as exc:  # that router is now in Error with its reason; the first failure is the answer
                log.warning("re-applying network %s after a refused VPN user change failed: %s", network_uuid,
                            exc.message)
        raise
    networking.settle_changes(ctx.cloud, **changes, success=True)
    return render(ctx, ctx.params["render"])


@api_command("listVpnUsers", response="vpnuser", is_list=True, roles=ALL_ROLES, response_fields=VPN_USER_FIELDS,
             description="Lists vpn users", params={"id": P.uuid("The uuid of the Vpn user"),
                                                    "username": P.string("the username of the vpn user.")})
def list_vpn_users(ctx, p):
    query = select(VpnUser).where(VpnUser.removed.is_(None), VpnUser.state != RuleState.REVOKE,
                                  ctx.owner_filter(VpnUser, by_id="id" in p))
    if "id" in p:
        query = query.where(VpnUser.uuid == p["id"])
    if "username" in p:
        query = query.where(VpnUser.username == p["username"].strip())
    total, rows = ctx.page(query, name_column=VpnUser.username, order_by=VpnUser.id)
    return total, [vpn_user_view(ctx.session, u) for u in rows]

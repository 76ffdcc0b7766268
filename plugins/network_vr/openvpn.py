"""Remote-access VPN: one OpenVPN server in the router's namespace, on the VPN's public
address, UDP port 1194, handing clients addresses from the VPN's IP range and a route to
the guest network.

Why OpenVPN, not CloudStack's L2TP/IPsec: L2TP needs pppd and the kernel's PPP device,
and IPsec the kernel's ESP transforms; a management host that loads no kernel modules may
have neither, while OpenVPN needs only ``/dev/net/tun``. The shape stays CloudStack's:
a pre-shared key per VPN plus a username and password per VPN user.

* The pre-shared key becomes OpenVPN's ``tls-crypt`` key (``tls_crypt_key``): without it a
  client cannot even start a handshake.
* Users are checked by ``vpn_auth.py`` against the users file the router writes
  (PBKDF2 hashes, never passwords), read at every login: adding or removing a VPN user
  restarts nothing.
* The server's certificate is self-signed and kept in the database with the VPN;
  clients pin its SHA-256 fingerprint (``peer-fingerprint``), shown by listRemoteAccessVpns.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sys
from pathlib import Path

from . import system
from .spec import RouterSpec

MARKER = "openvpn"
AUTH_SCRIPT = Path(__file__).with_name("vpn_auth.py")


def tls_crypt_key(pre_shared_key: str) -> str:
    """OpenVPN's 2048-bit static key file, derived from the pre-shared key (SHA-512 in
    counter mode): the client derives the same file from the same key."""
    material = b""
    counter = 0
    while len(material) < 256:
        material += hashlib.sha512(f"strato-vpn/{counter}/".encode() + pre_shared_key.encode()).digest()
        counter += 1
    rows = [material[i:i + 16].hex() for i in range(0, 256, 16)]
    return "-----BEGIN OpenVPN Static key V1-----\n" + "\n".join(rows) + "\n-----END OpenVPN Static key V1-----\n"


def config(spec: RouterSpec, state: Path) -> str:
    """The server configuration (pure)."""
    vpn = spec.vpn
    assert vpn is not None
    net = ipaddress.IPv4Network(f"{vpn.local_ip}/24", strict=False)
    guest = ipaddress.IPv4Network(spec.cidr, strict=False)
    auth = f'"{sys.executable} {AUTH_SCRIPT} {state / "vpn-users.json"}"'
    return "\n".join([
        "# written by Strato's virtual router; computed from the database, do not edit",
        "mode server", "tls-server", "dev tun0", "dev-type tun", "proto udp",
        f"local {vpn.public}", f"port {vpn.port}", "topology subnet",
        f"ifconfig {vpn.local_ip} {net.netmask}",
        f"ifconfig-pool {vpn.pool_start} {vpn.pool_end} {net.netmask}",
        'push "topology subnet"', f'push "route-gateway {vpn.local_ip}"',
        f'push "route {guest.network_address} {guest.netmask}"',
        f"push \"dhcp-option DNS {spec.guest_ip}\"" if spec.has("Dns") else "",
        f"push \"dhcp-option DOMAIN {spec.network_domain}\"" if spec.has("Dns") else "",
        f"cert {state / 'vpn-server.crt'}", f"key {state / 'vpn-server.key'}",
        # clients present no certificate (username and password instead); OpenVPN still
        # wants a CA to be named, and the server's own certificate is the only one there is
        f"ca {state / 'vpn-server.crt'}", "verify-client-cert none", "username-as-common-name",
        "dh none", f"tls-crypt {state / 'vpn-tls-crypt.key'}",
        "script-security 2", f"auth-user-pass-verify {auth} via-file",
        "keepalive 10 60", "persist-key", "persist-tun",
        f"writepid {state / 'openvpn.pid'}", f"log {state / 'openvpn.log'}",
        f"status {state / 'openvpn.status'} 5", "verb 3", "",
    ])


def users_file(spec: RouterSpec) -> str:
    assert spec.vpn is not None
    return json.dumps({u.username: u.password_hash for u in spec.vpn.users}, sort_keys=True, indent=1) + "\n"


def apply(spec: RouterSpec, state: Path, namespace: str) -> None:
    pidfile = state / "openvpn.pid"
    if spec.vpn is None:
        stop(state)
        for name in ("openvpn.conf", "vpn-server.crt", "vpn-server.key", "vpn-tls-crypt.key", "vpn-users.json"):
            (state / name).unlink(missing_ok=True)
        return
    system.write_if_changed(state / "vpn-users.json", users_file(spec), mode=0o600)
    changed = system.write_if_changed(state / "vpn-server.crt", spec.vpn.certificate)
    changed |= system.write_if_changed(state / "vpn-server.key", spec.vpn.key, mode=0o600)
    changed |= system.write_if_changed(state / "vpn-tls-crypt.key", tls_crypt_key(spec.vpn.pre_shared_key),
                                       mode=0o600)
    changed |= system.write_if_changed(state / "openvpn.conf", config(spec, state))
    pid = system.read_pid(pidfile, MARKER)
    if pid is not None and not changed:
        return
    if pid is not None:
        system.stop_pidfile(pidfile, MARKER)
    system.run("openvpn", "--config", str(state / "openvpn.conf"), "--daemon", ns=namespace)
    system.wait_for_pid(pidfile, MARKER)


def stop(state: Path) -> None:
    system.stop_pidfile(state / "openvpn.pid", MARKER)


def fingerprint(certificate_pem: str) -> str:
    """The SHA-256 fingerprint of a PEM certificate as OpenVPN's ``peer-fingerprint`` writes it."""
    import base64

    body = "".join(line for line in certificate_pem.splitlines() if line and not line.startswith("-----"))
    digest = hashlib.sha256(base64.b64decode(body)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))

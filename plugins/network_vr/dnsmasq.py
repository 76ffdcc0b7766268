"""DHCP and DNS for a guest network: one dnsmasq in the router's namespace.

Only the NICs the database knows get an address (``dhcp-range=...,static``: a static lease
per MAC, CloudStack's behaviour), with the VM's name as host name; the same names
resolve in the network's domain. Host entries live in files dnsmasq re-reads on SIGHUP, so
a VM starting or going away changes no process; the main configuration changing
(gateway, domain, upstream servers) restarts dnsmasq.
"""

from __future__ import annotations

import ipaddress
import signal
from pathlib import Path

from . import system
from .spec import RouterSpec

MARKER = "dnsmasq"


def config(spec: RouterSpec, state: Path) -> str:
    """The main configuration (pure)."""
    net = ipaddress.IPv4Network(spec.cidr, strict=False)
    lines = [
        "# written by Strato's virtual router; computed from the database, do not edit",
        "interface=eth0",
        "bind-interfaces",
        "except-interface=lo",
        f"pid-file={state / 'dnsmasq.pid'}",
        f"dhcp-leasefile={state / 'dnsmasq.leases'}",
        f"dhcp-hostsfile={state / 'dhcp-hosts'}",
        f"addn-hosts={state / 'dns-hosts'}",
        # root: the state directory may be private to the management server (dnsmasq
        # re-reads the host files on SIGHUP, after it would have dropped privileges)
        "user=root",
        "group=root",
        "no-hosts",
        "no-resolv",
        "dhcp-authoritative",
        "log-facility=" + str(state / "dnsmasq.log"),
    ]
    if spec.has("Dhcp"):
        lines.append(f"dhcp-range=set:guest,{net.network_address},static,{net.netmask},infinite")
        lines.append(f"dhcp-option=tag:guest,option:router,{spec.gateway}")
        lines.append(f"dhcp-option=tag:guest,option:domain-name,{spec.network_domain}")
        lines.append(f"dhcp-option=tag:guest,option:domain-search,{spec.network_domain}")
        servers = [spec.guest_ip] if spec.has("Dns") else list(spec.dns)
        if servers:
            lines.append("dhcp-option=tag:guest,option:dns-server," + ",".join(servers))
    if spec.has("Dns"):
        lines += [f"domain={spec.network_domain}", f"local=/{spec.network_domain}/", "expand-hosts",
                  "domain-needed", "bogus-priv"]
        lines += [f"server={server}" for server in spec.dns]
    else:
        lines.append("port=0")  # DNS off
    return "\n".join(lines) + "\n"


def dhcp_hosts(spec: RouterSpec) -> str:
    """``mac,ip,hostname,infinite`` per NIC with an address, in MAC order (pure)."""
    rows = [f"{nic.mac},{nic.ip},{nic.hostname},infinite" for nic in sorted(spec.nics, key=lambda n: n.mac)
            if nic.ip]
    return "\n".join(rows) + ("\n" if rows else "")


def dns_hosts(spec: RouterSpec) -> str:
    """``ip name`` per NIC (pure); the router answers to its network name too."""
    rows = [f"{spec.guest_ip} {spec.name}"]
    rows += [f"{nic.ip} {nic.hostname}" for nic in sorted(spec.nics, key=lambda n: n.ip or "") if nic.ip]
    return "\n".join(rows) + "\n"


def apply(spec: RouterSpec, state: Path, namespace: str) -> None:
    """Start dnsmasq or bring it up to date: SIGHUP for host changes, a restart for the rest."""
    pidfile = state / "dnsmasq.pid"
    conf_changed = system.write_if_changed(state / "dnsmasq.conf", config(spec, state))
    hosts_changed = system.write_if_changed(state / "dhcp-hosts", dhcp_hosts(spec))
    hosts_changed |= system.write_if_changed(state / "dns-hosts", dns_hosts(spec))
    pid = system.read_pid(pidfile, MARKER)
    if pid is not None and not conf_changed:
        if hosts_changed:
            system.signal_pid(pid, signal.SIGHUP)
        return
    if pid is not None:
        system.stop_pidfile(pidfile, MARKER)
    # dnsmasq forks and writes its pid file once it is serving; a bad option fails here
    system.run("dnsmasq", f"--conf-file={state / 'dnsmasq.conf'}", ns=namespace)
    system.wait_for_pid(pidfile, MARKER)


def stop(state: Path) -> None:
    system.stop_pidfile(state / "dnsmasq.pid", MARKER)

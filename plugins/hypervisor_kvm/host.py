"""The libvirt connection to a host: the URL it is added with, opening and keeping the
connection, and what the host has.

URLs ``addHost`` takes (``libvirt_uri`` turns them into a libvirt URI):

- a libvirt URI, used as it is: ``qemu:///system``, ``qemu+tcp://host/system``,
  ``qemu+tls://host/system``, ``qemu+ssh://[user@]host/system`` (``/system`` is added when
  the path is empty), and ``test:///default``, libvirt's in-process test driver;
- CloudStack's form ``http://<host>`` (also ``https://`` or a bare host name), meaning
  ``qemu+ssh://[<username>@]<host>/system?no_tty=1``. ``localhost``, ``127.0.0.1`` and
  ``::1`` mean ``qemu:///system``: the libvirtd of this machine, no ssh.

The ssh transport authenticates with ssh keys only (the host key must already be known);
a password given to ``addHost`` is handed to libvirt's credential callback, which is what
SASL on ``qemu+tcp://`` / ``qemu+tls://`` asks for.

Connections are opened once per URI and reopened when libvirt reports them dead. For
that, and so a vanished remote host is noticed in seconds instead of a TCP timeout,
libvirt's default event loop runs in one daemon thread per process (started on the first
open) and remote connections get keepalive probes (5 s interval, 3 missed = dead).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import re
import threading
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlsplit

from core.drivers import HostInfo
from core.errors import InvalidParameterError, ResourceUnavailableError, UnsupportedError

from .errors import libvirt, translate

log = logging.getLogger(__name__)

LIBVIRT_SCHEMES = ("qemu", "qemu+tcp", "qemu+tls", "qemu+ssh", "qemu+unix", "qemu+libssh", "qemu+libssh2",
                   "test")
CLOUDSTACK_SCHEMES = ("http", "https")
URL_SCHEMES = LIBVIRT_SCHEMES + CLOUDSTACK_SCHEMES
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")

def _valid_host(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(name))


def libvirt_uri(url: str, username: str | None = None) -> str:
    """The libvirt URI for an ``addHost`` URL (see the module docstring).
    Raises ``InvalidParameterError`` for anything else."""
    url = (url or "").strip()
    if not url:
        raise InvalidParameterError("a host URL is required (qemu:///system, qemu+ssh://host/system, http://host)")
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        raise InvalidParameterError(f"host URL {url!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in LIBVIRT_SCHEMES:
        if scheme == "test":
            return url
        if hostname is not None and not _valid_host(hostname):
            raise InvalidParameterError(f"host URL {url!r}: {hostname!r} is not a host name")
        if parts.path in ("", "/"):
            url = parts._replace(path="/system").geturl()
        elif parts.path not in ("/system", "/session"):
            raise InvalidParameterError(f"host URL {url!r}: a qemu URI ends in /system (or /session)")
        return url
    if scheme in CLOUDSTACK_SCHEMES:
        if not hostname or not _valid_host(hostname):
            raise InvalidParameterError(f"host URL {url!r} names no host")
        if hostname in LOCAL_NAMES:
            return "qemu:///system"
        user = f"{username}@" if username else ""
        host = f"[{hostname}]" if ":" in hostname else hostname
        return f"qemu+ssh://{user}{host}/system?no_tty=1"
    raise InvalidParameterError(
        f"host URL {url!r}: scheme {parts.scheme!r} is not one the kvm plugin takes ({', '.join(URL_SCHEMES)})")


def is_local(uri: str) -> bool:
    """The URI reaches this machine's libvirt (so its files are this machine's files)."""
    parts = urlsplit(uri)
    return parts.scheme in ("qemu", "qemu+unix", "test") and parts.hostname in (None, "", *LOCAL_NAMES)


def migration_uri(source_uri: str, destination_uri: str) -> str | None:
    """Where the source QEMU sends the guest's memory: the destination's address as its
    libvirt URI names it (as CloudStack passes ``tcp:<destination ip>``), so it need not
    resolve the destination's own host name; 127.0.0.1 between two libvirtds of this
    machine; None (libvirt's choice, the destination's host name) otherwise."""
    def here(uri: str) -> bool:
        return is_local(uri) or urlsplit(uri).hostname in LOCAL_NAMES

    if here(source_uri) and here(destination_uri):
        return "tcp://127.0.0.1"
    name = urlsplit(destination_uri).hostname
    if name and name not in LOCAL_NAMES:
        return f"tcp://[{name}]" if ":" in name else f"tcp://{name}"
    return None


# -- the event loop --------------------------------------------------------------------

_event_loop_lock = threading.Lock()
_event_loop_started = False


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def ensure_event_loop() -> None:
    """Start libvirt's default event loop once per process. Must precede the opening of
    any connection that uses keepalive or events."""
    global _event_loop_started
    with _event_loop_lock:
        if _event_loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name="libvirt-event-loop", daemon=True).start()
        _event_loop_started = True


# -- one connection ----------------------------------------------------------------------


class Connection:
    """The connection to one libvirt URI, reopened when it died.

    ``get()`` returns a live ``virConnect`` or raises ``ResourceUnavailableError`` /
    ``InvalidParameterError`` (a URI libvirt has no driver for, bad credentials).
    Thread-safe: libvirt connections may be shared between threads.
    """

    def __init__(self, uri: str, username: str | None = None, password: str | None = None):
        self.uri = uri
        self._username = username
        self._password = password
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()

    def get(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive() == 1:
                        return self._conn
                except libvirt.libvirtError as exc:
                    log.info("libvirt connection to %s is dead (%s); reopening", self.uri, exc)
                self._drop()
            self._conn = self._open()
            return self._conn

    def reset(self) -> None:
        """Forget the connection so the next ``get()`` opens a new one (after an error
        that means the connection is gone)."""
        with self._lock:
            self._drop()

    def close(self) -> None:
        self.reset()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except libvirt.libvirtError as exc:
            # closing a connection whose peer is gone fails; there is nothing left to release
            log.debug("closing the dead libvirt connection to %s: %s", self.uri, exc)

    def _open(self) -> libvirt.virConnect:
        remote = not is_local(self.uri)
        ensure_event_loop()
        try:
            if self._username or self._password:
                conn = libvirt.openAuth(self.uri, [[libvirt.VIR_CRED_AUTHNAME, libvirt.VIR_CRED_PASSPHRASE],
                                                   self._credentials, None], 0)
            else:
                conn = libvirt.open(self.uri)
            if remote:
                conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        except libvirt.libvirtError as exc:
            error = translate(exc, f"cannot connect to libvirt at {self.uri}")
            if not isinstance(error, (InvalidParameterError, ResourceUnavailableError)):
                # whatever else stops a connection from opening, the host is not usable
                error = ResourceUnavailableError(error.message)
            raise error from exc
        return conn

    def _credentials(self, credentials: list, _opaque: Any) -> int:
        for cred in credentials:
            if cred[0] == libvirt.VIR_CRED_AUTHNAME:
                cred[4] = self._username or ""
            elif cred[0] == libvirt.VIR_CRED_PASSPHRASE:
                cred[4] = self._password or ""
        return 0


class Connections:
    """Every open connection of a driver, by URI."""

    def __init__(self) -> None:
        self._by_uri: dict[str, Connection] = {}
        self._lock = threading.Lock()

    def get(self, uri: str, username: str | None = None, password: str | None = None) -> Connection:
        with self._lock:
            connection = self._by_uri.get(uri)
            if connection is None:
                connection = self._by_uri[uri] = Connection(uri, username, password)
            return connection

    def replace(self, connection: Connection) -> None:
        """Keep ``connection`` for its URI, closing the one kept before."""
        with self._lock:
            old, self._by_uri[connection.uri] = self._by_uri.get(connection.uri), connection
        if old is not None and old is not connection:
            old.close()

    def close(self, uri: str) -> None:
        with self._lock:
            connection = self._by_uri.pop(uri, None)
        if connection is not None:
            connection.close()

    def close_all(self) -> None:
        with self._lock:
            connections, self._by_uri = list(self._by_uri.values()), {}
        for connection in connections:
            connection.close()


# -- what a host has -------------------------------------------------------------------


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


@dataclasses.dataclass(frozen=True)
class HostCapabilities:
    """The parts of ``virConnectGetCapabilities`` the driver uses."""

    uuid: str
    arch: str
    #: domain types offered for hvm guests of the host's architecture ("kvm", "qemu", "test")
    domain_types: frozenset[str]

    @classmethod
    def parse(cls, xml: str) -> HostCapabilities:
        caps = ET.fromstring(xml)
        arch = caps.findtext("host/cpu/arch") or ""
        types: set[str] = set()
        for guest in caps.iterfind("guest"):
            if guest.findtext("os_type") != "hvm":
                continue
            guest_arch = guest.find("arch")
            if guest_arch is None or (arch and guest_arch.get("name") != arch):
                continue
            types.update(d.get("type") for d in guest_arch.iterfind("domain") if d.get("type"))
        if not types:
            # libvirt's test driver offers i686 guests on whatever it reports as the host
            types = {d.get("type") for d in caps.iterfind("guest/arch/domain") if d.get("type")}
        return cls(uuid=caps.findtext("host/uuid") or "", arch=arch, domain_types=frozenset(types))


def choose_domain_type(setting: str, domain_types: frozenset[str], cpu_features: frozenset[str]) -> str:
    """The libvirt domain type for guests of a host.

    ``setting`` "kvm" or "qemu" is used when the host offers it (else ``UnsupportedError``).
    "auto" picks "kvm" only when the host offers it *and* its CPU has hardware
    virtualisation (``vmx`` or ``svm``): a host can have a working ``/dev/kvm`` without
    them (a paravirtual KVM in a VM), where guests hang or stop with "emulation failure"
    and only QEMU's software emulation ("qemu") runs them. Hosts that offer neither
    (libvirt's test driver) get the first type they do offer.
    """
    if setting != "auto":
        if setting not in domain_types:
            raise UnsupportedError(f"domain type {setting!r} is not offered by the host "
                                   f"(it offers {', '.join(sorted(domain_types)) or 'none'})")
        return setting
    if "kvm" in domain_types and cpu_features & {"vmx", "svm"}:
        return "kvm"
    if "qemu" in domain_types:
        return "qemu"
    if domain_types:
        return sorted(domain_types)[0]
    raise UnsupportedError("the host offers no domain type for hvm guests")


def cpu_features(conn: libvirt.virConnect, capabilities_xml: str) -> frozenset[str]:
    """Every feature of the host CPU, including those implied by its model name (the
    capabilities list only the ones beyond the model)."""
    cpu = ET.fromstring(capabilities_xml).find("host/cpu")
    if cpu is None:
        return frozenset()
    expanded = conn.baselineCPU([ET.tostring(cpu, encoding="unicode")],
                                libvirt.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES)
    return frozenset(f.get("name") for f in ET.fromstring(expanded).iterfind("feature")
                     if f.get("policy", "require") == "require")


def host_info(conn: libvirt.virConnect, uri: str, domain_type_setting: str) -> HostInfo:
    """What the host has. ``details`` keep the URI and the chosen domain type for later calls."""
    model, memory_mib, cpus, mhz, nodes, sockets, _cores, _threads = conn.getInfo()
    caps_xml = conn.getCapabilities()
    caps = HostCapabilities.parse(caps_xml)
    # Expanding the CPU model costs a call; only a host offering kvm needs it decided.
    features = cpu_features(conn, caps_xml) if "kvm" in caps.domain_types else frozenset()
    domain_type = choose_domain_type(domain_type_setting, caps.domain_types, features)
    return HostInfo(
        name=conn.getHostname(),
        cpu_sockets=max(1, nodes * sockets),
        cpu_cores=cpus,
        cpu_speed_mhz=mhz,
        memory_bytes=memory_mib * 1024 * 1024,
        hypervisor_version=_version(conn.getVersion()),
        capabilities=["hvm", "snapshot"],
        details={
            "libvirt_uri": uri,
            "host_uuid": caps.uuid,
            "arch": caps.arch or model,
            "hypervisor": conn.getType(),
            "libvirt_version": _version(conn.getLibVersion()),
            "domain_types": sorted(caps.domain_types),
            "domain_type": domain_type,
        },
    )

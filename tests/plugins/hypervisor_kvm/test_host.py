"""host.py (URLs, domain type, connections), errors.py and the driver's settings."""

from __future__ import annotations

import pytest

from core.errors import (
    ConfigurationError,
    InvalidParameterError,
    ResourceInUseError,
    ResourceUnavailableError,
    UnsupportedError,
)

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed (pip install 'strato[kvm]')")

from plugins.hypervisor_kvm import errors, host  # noqa: E402
from plugins.hypervisor_kvm.driver import KvmSettings, LibvirtDriver  # noqa: E402


@pytest.mark.parametrize("url, username, uri", [
    ("qemu:///system", None, "qemu:///system"),
    ("qemu+tcp://h1.example/system", None, "qemu+tcp://h1.example/system"),
    ("qemu+ssh://root@h1.example/system", None, "qemu+ssh://root@h1.example/system"),
    ("qemu+ssh://h1.example", None, "qemu+ssh://h1.example/system"),
    ("test:///default", None, "test:///default"),
    ("http://h1.example", None, "qemu+ssh://h1.example/system?no_tty=1"),
    ("http://10.1.1.5", "root", "qemu+ssh://root@10.1.1.5/system?no_tty=1"),
    ("https://h1.example:8250/", "admin", "qemu+ssh://admin@h1.example/system?no_tty=1"),
    ("h1.example", None, "qemu+ssh://h1.example/system?no_tty=1"),
    ("http://localhost", "root", "qemu:///system"),
    ("http://127.0.0.1", None, "qemu:///system"),
])
def test_addhost_urls_map_to_libvirt_uris(url, username, uri):
    assert host.libvirt_uri(url, username) == uri


@pytest.mark.parametrize("url", ["", "   ", "vmware://vc/dc", "http://", "http://bad_host!", "qemu:///nosuch",
                                 "http://h:notaport"])
def test_other_urls_are_invalid(url):
    with pytest.raises(InvalidParameterError):
        host.libvirt_uri(url)


def test_local_uris():
    assert host.is_local("qemu:///system") and host.is_local("test:///default")
    assert not host.is_local("qemu+ssh://h1/system") and not host.is_local("qemu+tcp://h1/system")


@pytest.mark.parametrize("setting, types, features, chosen", [
    ("auto", {"kvm", "qemu"}, {"vmx", "sse2"}, "kvm"),
    ("auto", {"kvm", "qemu"}, {"svm"}, "kvm"),
    # /dev/kvm works but the CPU has no hardware virtualisation (a paravirtual KVM): emulate
    ("auto", {"kvm", "qemu"}, {"hypervisor", "sse2"}, "qemu"),
    ("auto", {"qemu"}, {"vmx"}, "qemu"),
    ("auto", {"test"}, set(), "test"),
    ("qemu", {"kvm", "qemu"}, {"vmx"}, "qemu"),
    ("kvm", {"kvm", "qemu"}, set(), "kvm"),
])
def test_domain_type_choice(setting, types, features, chosen):
    assert host.choose_domain_type(setting, frozenset(types), frozenset(features)) == chosen


def test_domain_type_the_host_does_not_offer_is_unsupported():
    with pytest.raises(UnsupportedError, match="not offered"):
        host.choose_domain_type("kvm", frozenset({"qemu"}), frozenset({"vmx"}))
    with pytest.raises(UnsupportedError):
        host.choose_domain_type("auto", frozenset(), frozenset())


def test_test_driver_host_info():
    conn = host.Connection("test:///default").get()
    try:
        info = host.host_info(conn, "test:///default", "auto")
    finally:
        conn.close()
    assert info.cpu_cores > 0 and info.cpu_speed_mhz > 0 and info.memory_bytes > 0
    assert info.details["libvirt_uri"] == "test:///default"
    assert info.details["domain_type"] == "test"


def test_a_dead_connection_is_reopened():
    connection = host.Connection("test:///default")
    first = connection.get()
    assert connection.get() is first
    first.close()  # as when the daemon goes away: isAlive() now fails
    second = connection.get()
    assert second is not first and second.isAlive() == 1
    connection.close()


def test_driver_ping_reconnects_after_the_connection_died():
    driver = LibvirtDriver({})
    info = driver.connect_host("test:///default", None, None)
    from core.drivers import HostRef

    ref = HostRef(uuid="h", name=info.name, url="test:///default", details=info.details)
    driver._connection(ref).get().close()
    assert driver.ping_host(ref) is True
    driver.close()


def test_ping_of_an_unreachable_host_is_false_not_an_error():
    from core.drivers import HostRef

    driver = LibvirtDriver({})
    assert driver.ping_host(HostRef(uuid="h", name="gone", url="qemu+tcp://127.0.0.1:1/system", details={})) is False
    assert driver.ping_host(HostRef(uuid="h", name="bad", url="vmware://x", details={})) is False


# -- errors: real libvirt errors, translated ---------------------------------------------------


def _error(call, *args) -> libvirt.libvirtError:
    with pytest.raises(libvirt.libvirtError) as caught:
        call(*args)
    return caught.value


def test_libvirt_errors_become_strato_errors_keeping_the_message():
    conn = libvirt.open("test:///default")
    try:
        missing = _error(conn.lookupByName, "no-such-domain")
        assert errors.error_class(missing) is InvalidParameterError
        translated = errors.translate(missing, "looking")
        assert translated.message == f"looking: {missing.get_error_message()}"

        assert errors.error_class(_error(conn.defineXML, "<domain>")) is InvalidParameterError
        test_uuid = conn.lookupByName("test").UUIDString()
        clash = f"<domain type='test'><name>test</name><uuid>{test_uuid[:-1]}0</uuid><memory>1024</memory>" \
                "<os><type>hvm</type></os></domain>"
        assert errors.error_class(_error(conn.defineXML, clash)) is ResourceInUseError
        unsupported = _error(conn.lookupByName("test").attachDeviceFlags, "<disk/>", 0)
        assert errors.error_class(unsupported) is UnsupportedError
    finally:
        conn.close()
    refused = _error(libvirt.open, "qemu+tcp://127.0.0.1:1/system")
    assert errors.error_class(refused) is ResourceUnavailableError


# -- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_values():
    assert KvmSettings.from_config({}) == KvmSettings()
    settings = KvmSettings.from_config({"domain_type": "qemu", "shutdown_timeout": 5, "console_log_dir": "/x"})
    assert settings.domain_type == "qemu" and settings.shutdown_timeout == 5.0 and settings.console_log_dir == "/x"


@pytest.mark.parametrize("raw, match", [
    ({"domain_typo": "qemu"}, "unknown setting"),
    ({"domain_type": "xen"}, "domain_type"),
    ({"shutdown_timeout": "soon"}, "shutdown_timeout"),
    ({"shutdown_timeout": -1}, "shutdown_timeout"),
    ({"shutdown_timeout": True}, "shutdown_timeout"),
    ({"console_log_dir": "logs"}, "absolute"),
    ({"nic_fallback": "maybe"}, "nic_fallback"),
])
def test_bad_settings_stop_start_up(raw, match):
    with pytest.raises(ConfigurationError, match=match):
        LibvirtDriver(raw)

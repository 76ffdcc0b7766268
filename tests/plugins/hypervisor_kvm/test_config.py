"""config.py: the domain XML built from specs (pure; libvirt parses it in the last tests)."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from core.errors import InvalidParameterError, UnsupportedError
from plugins.hypervisor_kvm import config

from .helpers import nic, vm_spec, volume

LOG = "/var/log/strato/i-1.console.log"


def build(vm, **kwargs) -> ET.Element:
    kwargs.setdefault("domain_type", "qemu")
    kwargs.setdefault("console_log", LOG)
    return ET.fromstring(config.domain_xml(vm, **kwargs))


@pytest.fixture
def vm(tmp_path):
    return vm_spec([volume(tmp_path, "root.qcow2"), volume(tmp_path, "data.qcow2", device_id=1,
                                                           volume_type="DATADISK")],
                   [nic("52:54:00:00:00:01", bridge="br-guest")], memory_mb=256)


def test_domain_identity_resources_and_type(vm):
    dom = build(vm, domain_type="kvm")
    assert dom.get("type") == "kvm"
    assert dom.findtext("name") == vm.instance_name
    assert dom.findtext("uuid") == vm.uuid
    assert dom.find("memory").get("unit") == "MiB" and dom.findtext("memory") == "256"
    assert dom.findtext("vcpu") == "1"
    assert dom.findtext("cputune/shares") == "500"
    assert dom.findtext("os/type") == "hvm"
    assert dom.find("features/acpi") is not None
    assert dom.find(f"metadata/{{{config.METADATA_NS}}}instance").get("uuid") == vm.uuid


def test_disks_are_virtio_files_named_by_device_id_root_booted(vm, tmp_path):
    disks = build(vm).findall("devices/disk")
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    assert all(d.find("target").get("bus") == "virtio" for d in disks)
    assert [d.find("source").get("file") for d in disks] == [str(tmp_path / "root.qcow2"),
                                                           str(tmp_path / "data.qcow2")]
    assert [d.find("driver").get("type") for d in disks] == ["qcow2", "qcow2"]
    assert disks[0].find("boot").get("order") == "1"
    assert disks[1].find("boot") is None


def test_nic_on_its_bridge_with_mac_and_virtio(vm):
    (iface,) = build(vm).findall("devices/interface")
    assert iface.get("type") == "bridge"
    assert iface.find("source").get("bridge") == "br-guest"
    assert iface.find("mac").get("address") == "52:54:00:00:00:01"
    assert iface.find("model").get("type") == "virtio"


def test_nic_without_bridge_falls_back_as_told(tmp_path):
    vm = vm_spec([volume(tmp_path, "root.qcow2")], [nic("52:54:00:00:00:02")])
    (iface,) = build(vm, nic_fallback="user").findall("devices/interface")
    assert iface.get("type") == "user" and iface.find("mac").get("address") == "52:54:00:00:00:02"
    assert build(vm, nic_fallback="none").findall("devices/interface") == []
    with pytest.raises(InvalidParameterError, match="no bridge"):
        build(vm, nic_fallback="error")


def test_console_is_logged_and_vnc_listens_on_loopback(vm):
    devices = build(vm).find("devices")
    serial = devices.find("serial")
    assert serial.get("type") == "pty"
    assert serial.find("log").get("file") == LOG
    assert devices.find("console/target").get("type") == "serial"
    graphics = devices.find("graphics")
    assert graphics.get("type") == "vnc" and graphics.get("autoport") == "yes"
    assert graphics.get("listen") == "127.0.0.1"


def test_volume_paths_relative_to_the_pool_or_absolute():
    rel = volume(None, "sub/v.qcow2", pool_url="file:///pools/p1")
    assert config.disk_source(rel) == config.DiskSource("file", "/pools/p1/sub/v.qcow2")
    absolute = volume(None, "/elsewhere/v.qcow2", pool_url="file:///pools/p1")
    assert config.disk_source(absolute).path == "/elsewhere/v.qcow2"
    plain = volume(None, "v.qcow2", pool_url="/pools/p2")
    assert config.disk_source(plain).path == "/pools/p2/v.qcow2"
    shared = volume(None, "v.qcow2", pool_url="sharedmountpoint://any/mnt/shared")
    assert config.disk_source(shared).path == "/mnt/shared/v.qcow2"


def test_nfs_pool_mounted_by_the_storage_plugin_is_a_file():
    vol = volume(None, "v.qcow2", pool_url="nfs://srv/export", pool_details={"mountpoint": "/mnt/abc"})
    assert config.disk_source(vol) == config.DiskSource("file", "/mnt/abc/v.qcow2")


def test_nfs_pool_not_mounted_is_a_network_disk_for_qemus_nfs_client():
    vol = volume(None, "v.qcow2", pool_url="nfs://srv.example:2049/export/primary")
    disk = ET.fromstring(config.disk_xml(vol))
    assert disk.get("type") == "network"
    source = disk.find("source")
    assert source.get("protocol") == "nfs"
    assert source.get("name") == "/export/primary/v.qcow2"
    assert source.find("host").get("name") == "srv.example"
    assert source.find("host").get("port") == "2049"
    assert source.find("identity").attrib == {"user": "+0", "group": "+0"}
    # the storage plugin's details win over the URL
    vol = volume(None, "v.qcow2", pool_url="nfs://srv/export",
                 pool_details={"access": "libnfs", "server": "10.0.0.9", "export": "/other"})
    assert config.disk_source(vol) == config.DiskSource("nfs", "/other/v.qcow2", server="10.0.0.9")


def test_volume_path_given_as_an_nfs_url_is_a_network_disk():
    # the nfs storage plugin reports volumes of pools it reaches with libnfs this way
    vol = volume(None, "nfs://10.0.0.9/export/primary/v.qcow2", pool_url="nfs://10.0.0.9/export/primary",
                 pool_details={"access": "libnfs", "server": "10.0.0.9", "export": "/export/primary"})
    assert config.disk_source(vol) == config.DiskSource("nfs", "/export/primary/v.qcow2", server="10.0.0.9")


@pytest.mark.parametrize("device_id, target", [(0, "vda"), (1, "vdb"), (25, "vdz"), (26, "vdaa"), (27, "vdab"),
                                               (51, "vdaz"), (52, "vdba")])
def test_disk_targets_as_the_kernel_names_them(device_id, target):
    assert config.disk_target(device_id) == target


def test_refuses_what_it_cannot_express(tmp_path):
    good = volume(tmp_path, "root.qcow2")
    with pytest.raises(InvalidParameterError, match="not a UUID"):
        build(_with(vm_spec([good]), uuid="nope"))
    with pytest.raises(InvalidParameterError, match="domain type"):
        build(vm_spec([good]), domain_type="xen")
    with pytest.raises(InvalidParameterError, match="absolute"):
        build(vm_spec([good]), console_log="relative.log")
    with pytest.raises(InvalidParameterError, match="device id 0"):
        build(vm_spec([good, volume(tmp_path, "other.qcow2")]))
    with pytest.raises(InvalidParameterError, match="no path"):
        build(vm_spec([volume(tmp_path, None)]))
    with pytest.raises(UnsupportedError, match="VHD"):
        build(vm_spec([_with(good, format="VHD")]))
    with pytest.raises(UnsupportedError, match="iscsi"):
        build(vm_spec([volume(tmp_path, "v", pool_url="iscsi://target/iqn")]))
    with pytest.raises(InvalidParameterError, match="out of range"):
        config.disk_target(26 * 27)


def test_text_is_escaped_and_title_single_line(tmp_path):
    vm = _with(vm_spec([volume(tmp_path, "root.qcow2")]), display_name="a <b> & 'c'\nsecond line")
    dom = build(vm)
    assert dom.findtext("title") == "a <b> & 'c' second line"


def _with(obj, **changes):
    return dataclasses.replace(obj, **changes)


# -- libvirt itself accepts what config builds ----------------------------------------------


def test_libvirt_test_driver_accepts_the_xml(libvirt_module, vm, tmp_path):
    vm.volumes.append(volume(None, "n.qcow2", device_id=2, volume_type="DATADISK", pool_url="nfs://srv/export"))
    vm.nics.append(_with(nic("52:54:00:00:00:03"), device_id=1))
    conn = libvirt_module.open("test:///default")
    try:
        domain = conn.defineXML(config.domain_xml(vm, domain_type="test", console_log=LOG))
        try:
            back = ET.fromstring(domain.XMLDesc(0))
            assert back.findtext("uuid") == vm.uuid
            assert [d.find("target").get("dev") for d in back.findall("devices/disk")] == ["vda", "vdb", "vdc"]
            assert [i.get("type") for i in back.findall("devices/interface")] == ["bridge", "user"]
        finally:
            domain.undefine()
    finally:
        conn.close()


@pytest.mark.kvm
def test_real_libvirtd_accepts_the_xml(libvirtd, libvirt_module, vm):
    vm.volumes.append(volume(None, "n.qcow2", device_id=2, volume_type="DATADISK", pool_url="nfs://srv/export"))
    conn = libvirt_module.open(libvirtd)
    try:
        domain = conn.defineXML(config.domain_xml(vm, domain_type="qemu", console_log=LOG))
        try:
            back = ET.fromstring(domain.XMLDesc(0))
            assert back.find("devices/disk[@type='network']/source").get("name") == "/export/n.qcow2"
            assert back.find("devices/serial/log").get("file") == LOG
        finally:
            domain.undefineFlags(0)
    finally:
        conn.close()


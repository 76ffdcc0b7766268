"""URL parsing, checksum syntax and file naming: no server needed."""

from __future__ import annotations

import pytest

from core.errors import InvalidParameterError
from plugins.storage_nfs import layout, urls
from plugins.storage_nfs.download import Checksum, parse_checksum


@pytest.mark.parametrize("url, kind, canonical, path, server, export", [
    ("nfs://10.0.0.5/export/primary", "nfs", "nfs://10.0.0.5/export/primary", None, "10.0.0.5", "/export/primary"),
    ("NFS://filer.example/vol/", "nfs", "nfs://filer.example/vol", None, "filer.example", "/vol"),
    ("nfs://[fd00::1]/x", "nfs", "nfs://[fd00::1]/x", None, "fd00::1", "/x"),
    ("file:///srv/primary", "local", "file:///srv/primary", "/srv/primary", None, None),
    ("file://localhost/srv//primary/", "local", "file:///srv/primary", "/srv/primary", None, None),
    ("sharedmountpoint://anyhost/mnt/shared", "local", "file:///mnt/shared", "/mnt/shared", None, None),
    ("/var/lib/strato/primary", "local", "file:///var/lib/strato/primary", "/var/lib/strato/primary", None, None),
])
def test_parse_accepts(url, kind, canonical, path, server, export):
    location = urls.parse(url)
    assert (location.kind, location.url, location.path, location.server, location.export) == (
        kind, canonical, path, server, export)


@pytest.mark.parametrize("url, words", [
    ("", "required"),
    ("iscsi://host/iqn", "scheme"),
    ("relative/path", "scheme"),
    ("nfs:///export", "server"),
    ("nfs://host", "export path"),
    ("nfs://host/", "export path"),
    ("nfs://host:2049/export", "port"),
    ("nfs://user:pw@host/export", "user"),
    ("nfs://host/export?version=4", "query"),
    ("file://otherhost/srv", "local path"),
    ("file:///srv/../etc", ".."),
])
def test_parse_refuses(url, words):
    with pytest.raises(InvalidParameterError, match=words):
        urls.parse(url)


@pytest.mark.parametrize("text, expected", [
    (None, None),
    ("", None),
    ("d41d8cd98f00b204e9800998ecf8427e", Checksum("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("{MD5}D41D8CD98F00B204E9800998ECF8427E", Checksum("md5", "d41d8cd98f00b204e9800998ecf8427e")),
    ("{sha256}" + "ab" * 32, Checksum("sha256", "ab" * 32)),
    ("{SHA-256}" + "ab" * 32, Checksum("sha256", "ab" * 32)),
    ("{sha512}" + "0" * 128, Checksum("sha512", "0" * 128)),
    ("a" * 40, Checksum("sha1", "a" * 40)),
    ("a" * 64, Checksum("sha256", "a" * 64)),
])
def test_checksum_syntax(text, expected):
    assert parse_checksum(text) == expected


@pytest.mark.parametrize("text, words", [
    ("{crc32}deadbeef", "unknown algorithm"),
    ("{md5}abc", "32 hex digits"),
    ("{sha256}" + "a" * 32, "64 hex digits"),
    ("xyz", "not"),
    ("a" * 33, "not"),
])
def test_checksum_refused(text, words):
    with pytest.raises(InvalidParameterError, match=words):
        parse_checksum(text)


def test_layout_is_cloudstack_like():
    assert layout.store_template("u1", "QCOW2") == "template/tmpl/0/u1/u1.qcow2"
    assert layout.store_template("u1", "iso", account=7) == "template/tmpl/7/u1/u1.iso"
    assert layout.store_snapshot("vol", "snap", 3) == "snapshots/3/vol/snap.qcow2"
    assert layout.pool_template("t") == "templates/t.qcow2"
    assert layout.volume_file("v", "RAW") == "v.raw"
    part = layout.part_name("templates/t.qcow2")
    assert part.startswith("templates/.t.qcow2.part-") and part != layout.part_name("templates/t.qcow2")


@pytest.mark.parametrize("bad", ["../etc", "a/b", ".hidden", "", "a\x00b", "x" * 200])
def test_layout_refuses_names_that_escape(bad):
    with pytest.raises(InvalidParameterError):
        layout.volume_file(bad, "QCOW2")


def test_layout_refuses_unknown_formats():
    with pytest.raises(InvalidParameterError, match="volume format"):
        layout.volume_file("v", "VMDK")
    with pytest.raises(InvalidParameterError, match="template format"):
        layout.store_template("t", "ZIP")

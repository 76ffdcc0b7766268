"""Where files live inside a pool or an image store (paths relative to its root).

Primary storage (a pool)::

    <volume uuid>.qcow2                   a volume (.raw for RAW volumes), at the root as CloudStack does
    templates/<template uuid>.qcow2       the pool's one copy of a template, backing root volumes

Image store (secondary storage), after CloudStack's::

    template/tmpl/<account>/<template uuid>/<template uuid>.<ext>
    snapshots/<account>/<volume uuid>/<snapshot uuid>.qcow2

``<account>`` is the owner's account id; the contract's TemplateRef carries none
yet, so templates go under ``0`` (CloudStack's directory for system templates).

Files are written under a hidden temporary name in the same directory
(``.<name>.part-<random>``) and published by rename or link, so a reader never
sees a half-written file under a final name, and a crash leaves only
``.part-`` files, which are safe to delete.
"""

from __future__ import annotations

import posixpath
import re
import secrets

from core.errors import InvalidParameterError

TEMPLATE_CACHE_DIR = "templates"
STORE_TEMPLATE_DIR = "template/tmpl"
STORE_SNAPSHOT_DIR = "snapshots"
PART_MARK = ".part-"

#: CloudStack template format -> file extension in the store
EXTENSIONS = {"QCOW2": "qcow2", "RAW": "raw", "VHD": "vhd", "VHDX": "vhdx", "VMDK": "vmdk",
              "ISO": "iso", "OVA": "ova"}
VOLUME_EXTENSIONS = {"QCOW2": "qcow2", "RAW": "raw"}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def component(value: object, what: str) -> str:
    """``value`` as one safe path component (a uuid, an account id). Raises
    ``InvalidParameterError`` for anything with a slash, leading dot or odd character."""
    text = str(value)
    if not _NAME.fullmatch(text) or ".." in text:
        raise InvalidParameterError(f"{what} {text!r} cannot name a file")
    return text


def volume_file(volume_uuid: str, fmt: str) -> str:
    ext = VOLUME_EXTENSIONS.get(fmt.upper())
    if ext is None:
        raise InvalidParameterError(f"volume format {fmt!r} is not one of {', '.join(VOLUME_EXTENSIONS)}")
    return f"{component(volume_uuid, 'volume uuid')}.{ext}"


def pool_template(template_uuid: str) -> str:
    return f"{TEMPLATE_CACHE_DIR}/{component(template_uuid, 'template uuid')}.qcow2"


def store_template_dir(template_uuid: str, account: object = 0) -> str:
    return (f"{STORE_TEMPLATE_DIR}/{component(account, 'account id')}/"
            f"{component(template_uuid, 'template uuid')}")


def store_template(template_uuid: str, fmt: str, account: object = 0) -> str:
    ext = EXTENSIONS.get(fmt.upper())
    if ext is None:
        raise InvalidParameterError(f"template format {fmt!r} is not one of {', '.join(EXTENSIONS)}")
    return f"{store_template_dir(template_uuid, account)}/{template_uuid}.{ext}"


def store_snapshot(volume_uuid: str, snapshot_uuid: str, account: object = 0) -> str:
    return (f"{STORE_SNAPSHOT_DIR}/{component(account, 'account id')}/{component(volume_uuid, 'volume uuid')}/"
            f"{component(snapshot_uuid, 'snapshot uuid')}.qcow2")


def relative(path: str | None, under: str, what: str) -> str:
    """``path`` checked to be a plain relative path below directory ``under`` (as the
    driver reported it): no leading slash, no ``.``/``..`` parts. Raises
    ``InvalidParameterError``."""
    parts = (path or "").split("/")
    if (not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts)
            or "\x00" in path or not path.startswith(under.rstrip("/") + "/")):
        raise InvalidParameterError(f"{what} {path!r} is not a file under {under}/ of its store")
    return path


def part_name(final: str) -> str:
    """A fresh temporary name next to ``final``."""
    directory, name = posixpath.split(final)
    return posixpath.join(directory, f".{name}{PART_MARK}{secrets.token_hex(6)}")

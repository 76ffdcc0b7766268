"""The pool and store URLs the plugin takes, parsed into a ``Location``.

Accepted, as CloudStack writes them:

- ``nfs://server/export/path``: the whole path is the export (what ``mount
  server:/export/path`` and QEMU's ``nfs://`` URLs name). No port (NFSv3 finds
  the server's ports through rpcbind, and QEMU's nfs driver takes none), no
  query, no user.
- ``file:///abs/path`` and ``sharedmountpoint://[host]/abs/path``: a directory
  this machine (and, for shared mount points, every host) sees at that path;
  the host part of a shared mount point is ignored, as CloudStack does.
- a plain absolute path: the same as ``file://``.

Anything else raises ``InvalidParameterError`` saying what was wrong.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from core.errors import InvalidParameterError

SCHEMES = ("nfs", "file", "sharedmountpoint")


@dataclass(frozen=True)
class Location:
    #: "nfs" or "local"
    kind: str
    #: canonical URL: nfs://server/export or file:///path
    url: str
    #: local directory (kind "local")
    path: str | None = None
    server: str | None = None
    #: export path, always starting with "/" and without a trailing "/" (kind "nfs")
    export: str | None = None


def _clean_path(raw: str, url: str) -> str:
    path = unquote(raw)
    if not path.startswith("/"):
        raise InvalidParameterError(f"storage URL {url!r}: the path must be absolute")
    if "\x00" in path or any(part == ".." for part in path.split("/")):
        raise InvalidParameterError(f"storage URL {url!r}: the path must not contain '..' or NUL")
    cleaned = posixpath.normpath(path)
    # normpath keeps a leading "//" (POSIX allows it a meaning); collapse it
    return "/" + cleaned.lstrip("/")


def parse(url: str) -> Location:
    """Parse a pool/store URL. Raises ``InvalidParameterError``."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidParameterError("a storage URL is required")
    url = url.strip()
    if url.startswith("/"):
        path = _clean_path(url, url)
        return Location(kind="local", url=f"file://{path}", path=path)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidParameterError(
            f"storage URL {url!r}: scheme {parts.scheme or '(none)'!r} is not one of {', '.join(SCHEMES)}")
    if parts.query or parts.fragment:
        raise InvalidParameterError(f"storage URL {url!r}: query strings and fragments are not supported")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidParameterError(f"storage URL {url!r}: file:// URLs name a local path (file:///path)")
        path = _clean_path(parts.path, url)
        return Location(kind="local", url=f"file://{path}", path=path)
    if scheme == "sharedmountpoint":
        path = _clean_path(parts.path, url)
        return Location(kind="local", url=f"file://{path}", path=path)
    # nfs
    if parts.username or parts.password:
        raise InvalidParameterError(f"storage URL {url!r}: NFS URLs carry no user or password")
    try:
        port = parts.port
    except ValueError:
        raise InvalidParameterError(f"storage URL {url!r}: bad port") from None
    if port is not None:
        raise InvalidParameterError(
            f"storage URL {url!r}: NFS URLs take no port (NFSv3 finds it through rpcbind)")
    server = parts.hostname
    if not server:
        raise InvalidParameterError(f"storage URL {url!r}: the NFS server is missing (nfs://server/export)")
    export = _clean_path(parts.path, url).rstrip("/") if parts.path else ""
    if not export:
        raise InvalidParameterError(f"storage URL {url!r}: the export path is missing (nfs://server/export)")
    # IPv6 literals go back into brackets in the canonical URL
    host = f"[{server}]" if ":" in server else server
    return Location(kind="nfs", url=f"nfs://{host}{export}", server=server, export=export)

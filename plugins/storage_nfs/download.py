"""Fetching a template: checksum syntax, and streaming an http(s)/file URL into a writer.

Checksums are written as CloudStack accepts them: ``{md5}hex``, ``{sha256}hex``
(also ``{sha1}``, ``{sha224}``, ``{sha384}``, ``{sha512}``, with or without a
dash, any case), or bare hex: 32 digits are MD5 (CloudStack's default), and
40/64/128 digits are taken as SHA-1/SHA-256/SHA-512 by their length.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote, urlsplit

import requests

from core.errors import InvalidParameterError, ResourceUnavailableError

CHUNK = 1 << 20
#: bytes of the start of a download kept for format checks (ISO 9660 puts its magic at 32769)
HEAD_BYTES = 64 * 1024

_NAMED = re.compile(r"^\{([A-Za-z0-9-]+)\}([0-9A-Fa-f]+)$")
_ALGORITHMS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    hexdigest: str

    def new(self):
        return hashlib.new(self.algorithm)


def parse_checksum(text: str | None) -> Checksum | None:
    """None for no checksum. Raises ``InvalidParameterError`` for one that is malformed."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    named = _NAMED.match(text)
    if named:
        algorithm = named.group(1).lower().replace("-", "")
        digest = named.group(2).lower()
        if algorithm not in _ALGORITHMS:
            raise InvalidParameterError(
                f"checksum {text!r}: unknown algorithm {named.group(1)!r} (use one of {', '.join(_ALGORITHMS)})")
        if len(digest) != _ALGORITHMS[algorithm]:
            raise InvalidParameterError(
                f"checksum {text!r}: a {algorithm} digest has {_ALGORITHMS[algorithm]} hex digits, not {len(digest)}")
        return Checksum(algorithm, digest)
    if re.fullmatch(r"[0-9A-Fa-f]+", text) and len(text) in _BY_LENGTH:
        return Checksum(_BY_LENGTH[len(text)], text.lower())
    raise InvalidParameterError(
        f"checksum {text!r} is not {{algorithm}}hex nor a bare md5/sha1/sha256/sha512 hex digest")


@dataclass
class Fetched:
    size: int
    hexdigest: str | None
    head: bytes


def fetch(url: str, write: Callable[[bytes], object], progress: Callable[[int], object],
          checksum: Checksum | None, timeout: float = 60.0, max_bytes: int | None = None,
          file_dirs: list[str] | None = None) -> Fetched:
    """Stream ``url`` (http, https or file) into ``write``, calling ``progress(percent)``
    with whole percents as they grow, 0 first and at most 99 (when the size is unknown,
    only 0): 100 is the caller's to say once its own checks of the file pass. Computes the digest of ``checksum``'s
    algorithm and raises ``InvalidParameterError`` when it differs.

    Raises ``InvalidParameterError`` for a URL that is not http(s)/file, an HTTP
    error status, a missing file, or more than ``max_bytes``; ``ResourceUnavailableError``
    when the server cannot be reached or the connection breaks. ``file_dirs``, when
    given, are the only directories ``file://`` URLs may name files under. Writes nothing
    anywhere but ``write``; the caller removes what it wrote on failure.
    """
    scheme = urlsplit(url).scheme.lower()
    hasher = checksum.new() if checksum else None
    state = {"size": 0, "head": bytearray(), "percent": -1}

    def take(data: bytes, total: int | None) -> None:
        state["size"] += len(data)
        if max_bytes is not None and state["size"] > max_bytes:
            raise InvalidParameterError(f"{url}: larger than the allowed {max_bytes} bytes")
        if len(state["head"]) < HEAD_BYTES:
            state["head"] += data[:HEAD_BYTES - len(state["head"])]
        if hasher:
            hasher.update(data)
        write(data)
        if total:
            # capped at 99: a size header that lies low must not announce completion
            percent = min(99, state["size"] * 100 // total)
            if percent > state["percent"]:
                state["percent"] = percent
                progress(percent)

    progress(0)
    state["percent"] = 0
    if scheme in ("http", "https"):
        _fetch_http(url, take, timeout)
    elif scheme == "file":
        _fetch_file(url, take, file_dirs)
    else:
        raise InvalidParameterError(f"template URL {url!r}: only http, https and file URLs can be downloaded")

    digest = hasher.hexdigest() if hasher else None
    if checksum and digest != checksum.hexdigest:
        raise InvalidParameterError(
            f"{url}: checksum mismatch: expected {checksum.algorithm} {checksum.hexdigest}, got {digest}")
    return Fetched(size=state["size"], hexdigest=digest, head=bytes(state["head"]))


def _fetch_http(url: str, take, timeout: float) -> None:
    try:
        with requests.get(url, stream=True, timeout=(timeout, timeout)) as response:
            if response.status_code >= 400:
                raise InvalidParameterError(f"{url}: HTTP {response.status_code} {response.reason}")
            length = response.headers.get("Content-Length")
            # a compressed transfer's length is of the compressed bytes, not what we write
            encoded = response.headers.get("Content-Encoding", "identity") != "identity"
            total = int(length) if length and length.isdigit() and not encoded else None
            received = 0
            for data in response.iter_content(CHUNK):
                received += len(data)
                take(data, total)
            if total is not None and received != total:
                raise ResourceUnavailableError(f"{url}: the download ended after {received} of {total} bytes")
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise ResourceUnavailableError(f"{url}: cannot download: {exc}") from exc
    except requests.exceptions.Timeout as exc:
        raise ResourceUnavailableError(f"{url}: download timed out: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        raise InvalidParameterError(f"{url}: cannot download: {exc}") from exc


def _fetch_file(url: str, take, allowed_dirs: list[str] | None) -> None:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidParameterError(f"template URL {url!r}: file URLs name a local path (file:///path)")
    path = os.path.realpath(unquote(parts.path))
    if allowed_dirs is not None and not any(
            path.startswith(os.path.realpath(root).rstrip("/") + "/") for root in allowed_dirs):
        raise InvalidParameterError(f"template URL {url!r}: file URLs must lie under {', '.join(allowed_dirs)}")
    # a device (file:///dev/sda) would read this machine's own disks into a template
    if os.path.exists(path) and not os.path.isfile(path):
        raise InvalidParameterError(f"template URL {url!r}: {path} is not a regular file")
    try:
        total = os.path.getsize(path)
        with open(path, "rb") as handle:
            while data := handle.read(CHUNK):
                take(data, total)
    except FileNotFoundError:
        raise InvalidParameterError(f"template URL {url!r}: {path} does not exist") from None
    except PermissionError as exc:
        raise InvalidParameterError(f"template URL {url!r}: {exc}") from exc

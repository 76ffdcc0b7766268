"""Request signatures: CloudStack's HMAC-SHA1 over the sorted, encoded, lowercased parameters.

The string signed is ``k1=v1&k2=v2...`` over every parameter but ``signature``,
names sorted, values URL-encoded (a space as ``%20``), the whole string then
lowercased; the signature is the Base64 of its HMAC-SHA1 under the secret key.

Clients agree on that much and differ in the details, so ``verify`` accepts the
string as any of them builds it (each variant below names who builds it so):

* ``cloudstack`` - the server's own: names as sent, sorted as Java sorts them
  (UTF-16 code units), values by ``java.net.URLEncoder`` (``*`` kept, ``~`` escaped);
* ``cs`` - the cs library: names sorted as Python sorts them, ``quote(value, safe="*")``;
* ``libcloud`` - names lowercased before sorting, ``quote(name, safe="[]")``,
  ``quote(value, safe="[]*")``;
* ``cmk`` - Go's ``url.QueryEscape`` on values (``*`` escaped, ``~`` kept), names
  sorted bytewise.

All of this is pure: no database, no clock except where ``now`` is passed in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Callable, Mapping
from urllib.parse import quote

Params = Mapping[str, str]


def _utf16_key(text: str) -> bytes:
    # Java's String.compareTo orders by UTF-16 code unit; big-endian UTF-16 bytes sort the same way.
    return text.encode("utf-16-be", errors="surrogatepass")


def _q(text: str, safe: str) -> str:
    # errors="replace": a lone surrogate cannot be signed by anyone; it must not crash the check
    return quote(text, safe=safe, errors="replace")


def _join(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in pairs)


def _cloudstack(params: Params) -> str:
    return _join([(k, _q(params[k], "*").replace("~", "%7E")) for k in sorted(params, key=_utf16_key)])


def _cs(params: Params) -> str:
    return _join([(k, _q(params[k], "*")) for k in sorted(params)])


def _libcloud(params: Params) -> str:
    lowered = sorted((k.lower(), v) for k, v in params.items())
    return _join([(_q(k, "[]"), _q(v, "[]*")) for k, v in lowered])


def _cmk(params: Params) -> str:
    # quote(safe="") escapes exactly what Go's QueryEscape does; a space comes out as %20,
    # which is what cmk turns QueryEscape's '+' into before signing.
    names = sorted(params, key=lambda k: k.encode("utf-8", errors="replace"))
    return _join([(k, _q(params[k], "")) for k in names])


VARIANTS: dict[str, Callable[[Params], str]] = {
    "cloudstack": _cloudstack, "cs": _cs, "libcloud": _libcloud, "cmk": _cmk,
}


def unsigned_params(params: Params) -> dict[str, str]:
    """Every parameter that is signed: all but ``signature`` (any case)."""
    return {k: v for k, v in params.items() if k.lower() != "signature"}


def canonical_strings(params: Params) -> dict[str, str]:
    """The lowercased string each client variant signs, by variant name."""
    signed = unsigned_params(params)
    return {name: build(signed).lower() for name, build in VARIANTS.items()}


def compute(query: str, secret: str) -> str:
    """Base64 HMAC-SHA1 of ``query`` under ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), query.encode("utf-8", errors="replace"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(params: Params, secret: str, variant: str = "cloudstack") -> str:
    """The signature ``variant``'s client would send for ``params`` (tests, and tools of ours)."""
    return compute(VARIANTS[variant](unsigned_params(params)).lower(), secret)


def verify(params: Params, secret: str, signature: str) -> str | None:
    """The name of the variant whose signature matches, or None.

    Every candidate is compared, in constant time each, so the time taken does not
    depend on which one matched.
    """
    # A '+' the client did not escape arrives as a space; Base64 never holds one.
    given = signature.strip().replace(" ", "+").encode("utf-8", errors="replace")
    matched = None
    seen: set[str] = set()
    for name, query in canonical_strings(params).items():
        if query in seen:
            continue
        seen.add(query)
        if hmac.compare_digest(compute(query, secret).encode("ascii"), given) and matched is None:
            matched = name
    return matched


_EXPIRES_FORMATS = ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z")


def parse_expires(text: str) -> dt.datetime | None:
    """``expires`` of a version 3 signature, as an aware datetime; None when malformed.

    CloudStack's format is ``yyyy-MM-dd'T'HH:mm:ssZ``: the zone as ``+0000``,
    ``+00:00`` or ``Z``; fractional seconds are also taken. A time without a zone is
    malformed (it could mean anything).
    """
    for fmt in _EXPIRES_FORMATS:
        try:
            parsed = dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            return parsed
    return None


def expires_problem(params: Params, now: dt.datetime) -> str | None:
    """Why a version 3 request must be refused (missing, malformed, past ``expires``), or None.

    Requests without ``signatureVersion=3`` carry no expiry and are never refused here.
    """
    lowered = {k.lower(): v for k, v in params.items()}
    if lowered.get("signatureversion", "").strip() != "3":
        return None
    expires = lowered.get("expires")
    if expires is None:
        return "signatureVersion=3 without expires"
    moment = parse_expires(expires)
    if moment is None:
        return f"expires {expires!r} is not yyyy-MM-ddTHH:mm:ssZ"
    if moment < now:
        return f"the request expired at {expires}"
    return None

"""Response envelopes of the native API, in JSON and XML, as CloudStack writes them.

This is the one place that turns a command's result, or an error, into the bytes
a client receives. Nothing else in Strato builds an error envelope.

Shapes (``<name>`` is the command's lowercased name + ``response``):

* list: ``{"<name>": {"count": total, "<object>": [...]}}``; a total of 0 is ``{}``
  (and a page past the end is ``{"count": total}``), as CloudStack's serializer does;
* object: ``{"<name>": {"<object>": {...}}}``; a command declared with
  ``response=UNWRAPPED`` puts the object's fields directly under ``<name>``
  (CloudStack's AsyncJobResponse and the login/logout responses);
* success: ``{"<name>": {"success": true}}`` (a boolean since CloudStack 4.11);
* async: ``{"<name>": {"id": ..., "jobid": ...}}``, ``id`` only when the job has an instance;
* error: ``{"<name>": {"uuidList": [], "errorcode": N, "cserrorcode": M, "errortext": ...}}``
  with HTTP status N; ``<name>`` is ``errorresponse`` only when there is no such command
  (or none was sent), as CloudStack's ApiServer.getSerializedApiError.

Field values: ``None`` is left out (CloudStack never sends null), datetimes become
CloudStack's ``yyyy-MM-dd'T'HH:mm:ssZ`` in UTC, booleans stay booleans in JSON and
become ``true``/``false`` in XML.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import re
import uuid as uuidlib
from typing import Any
from xml.sax.saxutils import escape

from core.commands import ApiCommand
from core.errors import StratoError
from core.jobs import JobHandle

#: the CloudStack version Strato answers as (XML root attribute, listCapabilities)
CLOUDSTACK_VERSION = "4.19.0.0"

#: ``response=`` value of a command whose object's fields sit directly under ``<name>``
UNWRAPPED = ""

JSON, XML = "json", "xml"
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"

ERROR_RESPONSE = "errorresponse"

# Characters XML 1.0 cannot carry at all; they are replaced so the document stays well-formed.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_XML_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
_XML_ESCAPES = {'"': "&quot;", "'": "&apos;"}


@dataclasses.dataclass
class Reply:
    """What goes back on the wire: status, body, content type and cookies to set."""

    status: int
    body: bytes
    content_type: str
    #: (name, value, options) for ``Response.set_cookie``; ``None`` as value deletes the cookie
    cookies: list[tuple[str, str | None, dict]] = dataclasses.field(default_factory=list)


def response_format(value: str | None) -> str:
    """``response=json`` (any case) means JSON; anything else, or nothing, means XML."""
    return JSON if (value or "").strip().lower() == JSON else XML


def response_name(command_name: str) -> str:
    return f"{command_name.lower()}response"


def error_response_name(command: ApiCommand | None, error: StratoError) -> str:
    """CloudStack names every error after the command, whatever its code (432 included: a
    command the caller's role may not call too); ``errorresponse`` when there is no such command."""
    if command is None:
        return ERROR_RESPONSE
    return response_name(command.name)


# -- building ----------------------------------------------------------------


def result(command: ApiCommand, value: Any, fmt: str) -> Reply:
    """The success envelope of ``command`` for the value its handler returned.

    Raises ``TypeError`` when the value does not follow the handler conventions of
    ``core.commands`` (the dispatcher reports that as 530).
    """
    name = response_name(command.name)
    if isinstance(value, JobHandle):
        body = {"id": value.instance_uuid, "jobid": value.job_uuid}
    elif command.is_list:
        body = _list_body(command, value)
    elif not isinstance(value, dict):
        raise TypeError(f"{command.name} returned {type(value).__name__}, not a dict, SUCCESS or JobHandle")
    elif _is_success(value):
        body = {"success": True, "displaytext": value.get("displaytext")}
    elif command.response == UNWRAPPED:
        body = value
    else:
        body = {command.response: value}
    return _render(name, body, fmt, 200)


def error(exc: StratoError, name: str, fmt: str) -> Reply:
    """The error envelope; its HTTP status is the error's ``errorcode``."""
    body = {"uuidList": [], "errorcode": exc.errorcode, "cserrorcode": exc.cserrorcode,
            "errortext": exc.message}
    return _render(name, body, fmt, exc.errorcode)


def cs_date(value: dt.datetime | None) -> str | None:
    """CloudStack's date format, ``2024-01-15T10:20:30+0000``; naive datetimes are UTC."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S+0000")


def _list_body(command: ApiCommand, value: Any) -> dict:
    if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (list, tuple))):
        raise TypeError(f"list command {command.name} must return (count, [objects]), not {type(value).__name__}")
    count, items = value
    body: dict[str, Any] = {}
    if count:
        body["count"] = count
        if items:
            body[command.response] = list(items)
    return body


def _is_success(value: dict) -> bool:
    return value.get("success") in ("true", True) and set(value) <= {"success", "displaytext"}


def _render(name: str, body: dict, fmt: str, status: int) -> Reply:
    tree = _plain(body)
    if fmt == JSON:
        text = json.dumps({name: tree}, ensure_ascii=False, separators=(",", ":"))
        # errors="replace": a lone surrogate from a client must not turn a reply into a crash
        return Reply(status, text.encode("utf-8", errors="replace"), JSON_CONTENT_TYPE)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<{_xml_name(name)} cloud-stack-version="{CLOUDSTACK_VERSION}">']
    _xml_children(parts, tree)
    parts.append(f"</{_xml_name(name)}>")
    return Reply(status, "".join(parts).encode("utf-8", errors="replace"), XML_CONTENT_TYPE)


# -- values ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-ready copy: Nones dropped from dicts, dates formatted, ids and enums as text."""
    kind = type(value)
    # Exact types first: responses such as listApis hold tens of thousands of values.
    if kind is str or kind is int or kind is bool or kind is float:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _plain(v) for k, v in value.items() if v is not None}
    if kind is list:
        return [_plain(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value if v is not None]
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        return cs_date(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, uuidlib.UUID):
        return str(value)
    raise TypeError(f"cannot put a {type(value).__name__} into an API response")


def _xml_children(parts: list[str], tree: dict) -> None:
    """Each field an element; a list repeats its element once per item, as CloudStack does."""
    for key, value in tree.items():
        tag = _xml_name(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                parts.append(f"<{tag}>")
                _xml_children(parts, item)
                parts.append(f"</{tag}>")
            else:
                parts.append(f"<{tag}>{_xml_text(item)}</{tag}>")


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(_XML_INVALID.sub("\ufffd", str(value)), _XML_ESCAPES)


def _xml_name(key: str) -> str:
    name = _XML_NAME_BAD.sub("_", key) or "_"
    return name if name[0].isalpha() or name[0] == "_" else f"_{name}"

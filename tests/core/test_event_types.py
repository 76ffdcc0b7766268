"""listEventTypes names every event type the code records, before any is recorded."""

from __future__ import annotations

import pathlib
import re

from api.commands.events import EVENT_TYPES

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: an upper-case dotted literal, as event types are spelled ("VM.CREATE", "LB.STICKINESSPOLICY.DELETE")
DOTTED = re.compile(r'"([A-Z][A-Z_]*(?:\.[A-Z_]+)+)"')
#: dotted literals that are usage event types only (core/orchestration/usage.py), not audit events
USAGE_ONLY = {"NETWORK.USAGE"}


def recorded_literals() -> dict[str, str]:
    found = {}
    for package in ("core", "api", "plugins"):
        for path in (ROOT / package).rglob("*.py"):
            for match in DOTTED.finditer(path.read_text()):
                found.setdefault(match.group(1), str(path.relative_to(ROOT)))
    return found


def test_every_event_type_in_the_code_is_listed():
    missing = {name: path for name, path in recorded_literals().items()
               if name not in EVENT_TYPES and name not in USAGE_ONLY}
    assert not missing, f"add these to api/commands/events.py EVENT_TYPES: {missing}"


def test_the_scan_sees_the_event_types_it_guards():
    # a scan that found nothing would pass the test above whatever the code records
    assert {"VM.CREATE", "NET.RULEMODIFY", "SNAPSHOTPOLICY.DELETE"} <= set(recorded_literals())

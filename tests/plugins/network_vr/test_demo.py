"""``strato demo --network vr``: an Advanced zone whose tenant VM (simulated) sits on an isolated
network with a real router; the next fresh demo in the same data dir removes that router (and
only that one), and ``strato demo --clean`` removes the rest."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main
from api.demo import BRIDGE_MARKER, PUBLIC_BRIDGE

pytestmark = [pytest.mark.usefixtures("vr_host")]


def _routers(data_dir: Path) -> list[dict]:
    """The routers' details (namespace, bridge) the demo's database holds."""
    with sqlite3.connect(data_dir / "strato.db") as db:
        return [json.loads(row[0]) for row in db.execute("SELECT details FROM domain_router")]


def _exists(namespace: str) -> bool:
    return Path("/run/netns", namespace).exists()


def _link(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _demo(data_dir: Path, *args: str):
    done = CliRunner().invoke(main, ["--data-dir", str(data_dir), "demo", *args])
    assert done.exit_code == 0, done.output
    return " ".join(done.output.split())


def test_the_vr_demo_runs_a_router_and_cleans_only_its_own(tmp_path, monkeypatch):
    for name in ("STRATO_CONFIG", "STRATO_HYPERVISORS", "STRATO_STORAGE", "STRATO_NETWORK", "STRATO_API",
                 "STRATO_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    mine, other = tmp_path / "mine", tmp_path / "other"
    bridge_was_there = _link(PUBLIC_BRIDGE)
    made: list[Path] = []
    try:
        made.append(other)
        _demo(other, "--no-serve", "--network", "vr")
        made.append(mine)
        output = _demo(mine, "--no-serve", "--network", "vr")
        assert "demo-vm-1 (Running" in output
        assert "source NAT address 198.51.100." in output and "createPortForwardingRule" in output
        assert "associateIpAddress" in output and "createFirewallRule" in output and "curl" in output
        (first,), (others,) = _routers(mine), _routers(other)
        assert _exists(first["namespace"]) and _link(first["bridge"]) and _exists(others["namespace"])
        assert "network = [\"vr\"]" in (mine / "strato.toml").read_text(), "serve loads the router plugin too"

        _demo(mine, "--no-serve", "--network", "vr")  # a rebuild: a new network, a new router
        (second,) = _routers(mine)
        assert second["namespace"] != first["namespace"]
        assert not _exists(first["namespace"]) and not _link(first["bridge"]), "the previous demo's router is gone"
        assert _exists(second["namespace"]) and _exists(others["namespace"]), "another data dir's is not touched"

        _demo(mine, "--clean")
        assert not _exists(second["namespace"]) and not _link(second["bridge"])
        assert not (mine / "strato.db").exists() and _exists(others["namespace"])
        assert _link(PUBLIC_BRIDGE), "the other demo's router is still on the public bridge"
    finally:
        for data_dir in reversed(made):
            CliRunner().invoke(main, ["--data-dir", str(data_dir), "demo", "--clean"])
    if not bridge_was_there:
        assert not _link(PUBLIC_BRIDGE), "the public bridge the demos made goes with the last of them"
    assert not any((d / BRIDGE_MARKER).exists() for d in made)

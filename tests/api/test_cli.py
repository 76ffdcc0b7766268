"""The strato command: demo (fresh and --keep), a busy port, serve's data directory."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from api.cli import main


def test_demo_builds_then_keep_reuses_it(tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve"])
    assert first.exit_code == 0, first.output
    assert "demo-vm-1 (Running" in first.output and "CLOUDSTACK_KEY=" in first.output
    again = runner.invoke(main, ["--data-dir", str(tmp_path), "demo", "--no-serve", "--keep"])
    assert again.exit_code == 0, again.output
    assert "demo-vm-1 (Running" in again.output
    key = next(line for line in first.output.splitlines() if "listVirtualMachines" in line)
    assert key in again.output, "--keep keeps the same cloud and keys"


def test_a_busy_port_is_refused_before_anything_is_touched(tmp_path):
    marker = tmp_path / "strato.db"
    marker.write_text("the data of a demo that is still serving")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "demo", "--port", str(port)])
    assert result.exit_code != 0 and "choose another with --port" in result.output
    assert marker.read_text() == "the data of a demo that is still serving"

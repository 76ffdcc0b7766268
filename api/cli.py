"""The ``strato`` command: demo, serve, worker, plugins, db."""

from __future__ import annotations

import logging
import signal
import sys
import threading

import click
from rich.console import Console
from rich.table import Table

from core import config as config_module
from core.errors import ConfigurationError, StratoError

console = Console(stderr=True)


def _settings(**overrides):
    try:
        return config_module.load({k: v for k, v in overrides.items() if v is not None})
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _cloud(settings, *, migrate=True):
    from core.cloud import Cloud

    try:
        return Cloud(settings, migrate=migrate)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.option("--data-dir", type=click.Path(file_okay=False), help="where the embedded database and files live")
@click.option("-v", "--verbose", is_flag=True, help="log at INFO level")
@click.pass_context
def main(ctx, data_dir, verbose):
    """Strato: an IaaS cloud orchestrator that speaks CloudStack's API."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = {"data_dir": data_dir}


@main.command()
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1)")
@click.option("--port", default=None, type=int, help="port to listen on (default 8080)")
@click.option("--hypervisor", type=click.Choice(["simulator", "kvm"]), default=None,
              help="simulated hosts (default) or this machine's libvirt + QEMU")
@click.option("--network", type=click.Choice(["vr"]), default=None,
              help="vr: an Advanced zone whose tenant network has a virtual router (root needed)")
@click.option("--fresh/--keep", default=True, help="start from an empty database (default) or keep the last demo")
@click.option("--no-serve", is_flag=True, help="build the demo cloud, print how to reach it, and exit")
@click.option("--clean", is_flag=True, help="remove the last demo (its VMs, routers, bridges and data) and exit")
@click.pass_obj
def demo(obj, host, port, hypervisor, network, fresh, no_serve, clean):
    """Build a demo cloud with a running VM and serve its API."""
    from pathlib import Path

    from .demo import build_demo, clean_machine, config_is_ours, demo_plugins, existing_demo, reset_data_dir, \
        write_config

    data_dir = Path(obj["data_dir"] or Path.cwd() / "var" / "demo").absolute()
    if not config_is_ours(data_dir):
        raise click.ClickException(f"{data_dir / 'strato.toml'} was not written by strato demo; the demo writes "
                                   "its own there: use another --data-dir")
    settings = _settings(data_dir=data_dir, api_host=host, api_port=port)
    if fresh and config_module.config_file(data_dir) == data_dir / "strato.toml":
        # the last demo's file: a fresh demo starts from the defaults and the options given
        defaults = config_module.Settings(data_dir=data_dir, database_url="")
        settings.api_host, settings.api_port = host or defaults.api_host, port or defaults.api_port
    if fresh or hypervisor or network:
        settings.plugins = demo_plugins(hypervisor or "simulator", network)
    # --keep without options: the kind of demo the last one was (its strato.toml says)
    hypervisor = "kvm" if "kvm" in settings.plugins.get("hypervisors", []) else "simulator"
    network = "vr" if "vr" in settings.plugins.get("network", []) else None
    if clean:
        try:
            removed = clean_machine(data_dir, settings)
        except StratoError as exc:
            raise click.ClickException(f"the demo could not be cleaned: {exc.message}") from None
        reset_data_dir(data_dir)
        (data_dir / "strato.toml").unlink(missing_ok=True)
        console.print(f"removed the demo in {data_dir}" + (f": {', '.join(removed)}" if removed else ""))
        return
    if not no_serve:
        # before anything is reset: a second demo must not wipe the data of one still serving
        _check_port(settings)
    if fresh:
        try:
            clean_machine(data_dir, settings)
        except StratoError as exc:
            raise click.ClickException(f"the previous demo could not be removed: {exc.message}") from None
        reset_data_dir(data_dir)
    write_config(settings)
    cloud = _cloud(settings)
    cloud.start(periodic=not no_serve)
    from .inprocess import ApiError

    try:
        summary = (None if fresh else existing_demo(cloud)) or build_demo(
            cloud, hypervisor=hypervisor, network=network, console=console)
    except (StratoError, ApiError, TimeoutError) as exc:
        cloud.close()
        raise click.ClickException(f"the demo could not be built: {getattr(exc, 'message', exc)}") from None
    _print_demo(summary, settings)
    if no_serve:
        cloud.close()
        return
    _serve(cloud, settings)


def _print_demo(summary: dict, settings) -> None:
    url = f"http://{settings.api_host}:{settings.api_port}/client/api"
    console.print(f"\n[bold green]Strato is up[/] with zone [bold]{summary['zone']}[/] and VM "
                  f"[bold]{summary['vm_name']}[/] ({summary['vm_state']}, {summary['vm_ip']}) "
                  f"owned by account [bold]{summary['account']}[/].\n")
    cs = _cs_command()
    tenant = f"CLOUDSTACK_ENDPOINT={url} CLOUDSTACK_KEY={summary['api_key']} CLOUDSTACK_SECRET={summary['secret_key']}"
    console.print(f"Data: {settings.data_dir} ({settings.database_url}). "
                  "Drive it with the cs client, as the tenant:")
    print(f"  {tenant} {cs} listVirtualMachines", flush=True)
    console.print("or as the root admin (admin / password):")
    print(f"  CLOUDSTACK_ENDPOINT={url} CLOUDSTACK_KEY={summary['admin_api_key']} "
          f"CLOUDSTACK_SECRET={summary['admin_secret_key']} {cs} listHosts", flush=True)
    if "network" in summary:
        _print_network(summary, f"{tenant} {cs}")
    console.print(f"Stopping the server leaves the VM{' and its router' if 'network' in summary else ''} running: "
                  f"the next fresh demo removes {'them' if 'network' in summary else 'it'}, or "
                  f"`strato --data-dir {settings.data_dir} demo --clean` does.")


def _print_network(summary: dict, cs: str) -> None:
    n = summary["network"]
    console.print(f"\nNetwork [bold]{n['network_name']}[/] ({n['cidr']}): router {n['router_state']} in namespace "
                  f"[bold]{n['namespace']}[/] (guest side {n['router_ip']}), source NAT address "
                  f"[bold]{n['source_nat']}[/] on bridge {n['public_bridge']} (this host: {n['public_gateway']}).")
    console.print("Reach the VM from this host: take an address, open a port and forward it (the id of the "
                  "new address is in the first answer):")
    print(f"  {cs} associateIpAddress networkid={n['network_id']}", flush=True)
    print(f"  {cs} createFirewallRule ipaddressid=<address id> protocol=tcp startport=8080 endport=8080 "
          f"cidrlist={n['public_gateway']}/32", flush=True)
    print(f"  {cs} createPortForwardingRule ipaddressid=<address id> protocol=tcp publicport=8080 privateport=80 "
          f"virtualmachineid={summary['vm_id']} openfirewall=false", flush=True)
    print("  curl -sS -m 5 http://<address>:8080/", flush=True)
    if summary.get("hypervisor") == "kvm":
        console.print("The test guest serves nothing, so curl's \"Couldn't connect to server\" (refused, exit 7) is "
                      "the guest's own answer: the forward works; a timeout (exit 28) means the firewall dropped it. "
                      "The guest's DHCP lease, served by the router's dnsmasq:")
        print(f"  cat {n['leases']}", flush=True)
    else:
        console.print("The VM is simulated (no packets), so curl times out either way; the router is real: "
                      "see the forward in its packet filter:")
        print(f"  ip netns exec {n['namespace']} nft list map ip strato pf_port", flush=True)


def _cs_command() -> str:
    """The cs client beside this interpreter (make demo installs it into .venv), else plain ``cs``."""
    import os
    import shutil
    from pathlib import Path

    beside = Path(sys.executable).with_name("cs")
    if not beside.exists() or shutil.which("cs") == str(beside):
        return "cs"
    relative = os.path.relpath(beside)
    return str(beside) if relative.startswith("..") else relative


@main.command()
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1, or [server] host)")
@click.option("--port", default=None, type=int, help="port to listen on (default 8080, or [server] port)")
@click.pass_obj
def serve(obj, host, port):
    """Serve the API of an existing cloud (migrating its database first)."""
    settings = _settings(data_dir=obj["data_dir"], api_host=host, api_port=port)
    _check_port(settings)
    cloud = _cloud(settings)
    cloud.start(periodic=True)
    console.print(f"Data: {settings.data_dir} ({settings.database_url})")
    if not cloud.has_zones():
        console.print("[yellow]This cloud has no zone yet[/]: create one through the API, or run "
                      "`strato demo` (its data is in var/demo: `strato --data-dir var/demo serve`).")
    _serve(cloud, settings)


def _check_port(settings) -> None:
    """Stop with a message that says what to change when the API address is taken."""
    import socket

    try:
        probe = socket.create_server((settings.api_host, settings.api_port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {settings.api_host}:{settings.api_port} ({exc.strerror}); "
                                   "choose another with --port") from None
    probe.close()


def _interrupt(*_):
    raise KeyboardInterrupt  # SIGTERM stops the server the way Ctrl-C does: cleanly


def _serve(cloud, settings) -> None:
    from .server import serve as serve_api

    console.print(f"Serving the CloudStack API on http://{settings.api_host}:{settings.api_port}/client/api "
                  "(Ctrl-C stops)")
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve_api(cloud, settings.api_host, settings.api_port)
    except KeyboardInterrupt:
        pass
    finally:
        cloud.close()


@main.command()
@click.option("--threads", default=4, show_default=True, help="jobs run at once in this process")
@click.pass_obj
def worker(obj, threads):
    """Take async jobs from the broker (STRATO_BROKER=redis://...) until stopped."""
    settings = _settings(data_dir=obj["data_dir"])
    if settings.broker == "embedded":
        raise click.ClickException("strato worker needs a broker: set STRATO_BROKER=redis://127.0.0.1:6379/0 "
                                   "(and the same on the API server)")
    import api.commands  # noqa: F401  - registers the job handlers of every command module

    api.commands.builtin_commands()
    cloud = _cloud(settings)
    cloud.jobs.recover()
    cloud.jobs.start_worker(threads)
    console.print(f"strato worker {cloud.jobs.process_id}: taking jobs from {settings.broker}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    cloud.close()


@main.command()
@click.pass_obj
def plugins(obj):
    """List installed plugins, which are enabled, and each driver's capabilities."""
    from core.plugins import PluginManager

    settings = _settings(data_dir=obj["data_dir"])
    manager = PluginManager(settings)
    try:
        manager.load()
    except ConfigurationError as exc:
        console.print(f"[red]{exc}[/]")
    table = Table("kind", "name", "enabled", "provides", "capabilities")
    allowed = settings.plugin_allow_list
    for row in manager.describe():
        caps = ", ".join(f"{k}={v}" for k, v in row["capabilities"].items())
        enabled = "yes" if row["enabled"] else "no"
        if row["enabled"] and allowed is not None and row["name"] not in allowed:
            enabled = "blocked by STRATO_PLUGINS"
        table.add_row(row["kind"], row["name"], enabled, row.get("hypervisor") or row["target"], caps)
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@main.group()
def db():
    """Database schema commands."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj):
    """Apply every pending migration."""
    from core.db import Database

    settings = _settings(data_dir=(obj or {}).get("data_dir"))
    Database(settings.database_url).upgrade()
    console.print(f"database at {settings.database_url} is up to date")


if __name__ == "__main__":
    sys.exit(main())

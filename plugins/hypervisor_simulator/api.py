"""``configureSimulator``: inject faults into simulated hosts through the API (root admin only)."""

from __future__ import annotations

from core import ROOT_ONLY, SUCCESS, InvalidParameterError, P, api_command, hookimpl
from core.model import Host

from .hypervisor import ACTIONS, SimulatorHypervisor

#: a day: longer than any test holds a call, short enough for time.sleep
MAX_DELAY = 86400.0


@api_command("configureSimulator", response="success", roles=ROOT_ONLY,
             description="Injects a fault into a simulated host: fail or delay its next calls, or take it down",
             params={
                 "hostid": P.uuid("the simulated host", required=True),
                 "name": P.string(f"the action to affect: {', '.join(ACTIONS)}"),
                 "count": P.integer("how many calls the fault affects (default 1)", minimum=1),
                 "delay": P.float("seconds to delay each affected call", minimum=0, maximum=MAX_DELAY),
                 "fail": P.boolean("fail the affected calls (default true)"),
                 "value": P.string("the error message the failing calls report"),
                 "state": P.string("Up or Down: bring the host up or take it down"),
                 "clear": P.boolean("remove every fault of the host first"),
             })
def configure_simulator(ctx, p):
    host = ctx.get(Host, p["hostid"], "hostid")
    driver = next((d for d in ctx.cloud.plugins.hypervisors.values() if isinstance(d, SimulatorHypervisor)), None)
    if driver is None or host.hypervisor != SimulatorHypervisor.hypervisor_type:
        raise InvalidParameterError(f"host {host.uuid} is not a simulated host")
    key = host.details["sim_key"]
    # Everything is checked before anything is changed: a refused request changes nothing.
    if "state" in p and p["state"].lower() not in ("up", "down"):
        raise InvalidParameterError("state must be Up or Down")
    if "name" in p and p["name"] not in ACTIONS:
        raise InvalidParameterError(f"unknown simulator action {p['name']!r}; one of {', '.join(ACTIONS)}")
    if "name" not in p and "state" not in p and not p.get("clear"):
        raise InvalidParameterError("give name (an action to fault), state, or clear")
    if p.get("clear"):
        driver.clear_faults(key)
    if "state" in p:
        driver.set_host_up(key, p["state"].lower() == "up")
    if "name" in p:
        driver.inject(key, p["name"], count=p.get("count", 1), delay=p.get("delay", 0.0),
                      fail=p.get("fail", True), message=p.get("value"))
    return SUCCESS


@hookimpl
def strato_api_commands():
    return [configure_simulator]

"""Load balancing: one haproxy in the router's namespace, a frontend per load-balancer
rule on its public address and port, the rule's VMs as the backend.

Algorithms map to haproxy's ``roundrobin``, ``leastconn`` and ``source``; stickiness
policies to a cookie haproxy inserts (LbCookie), the application's cookie (AppCookie) or
a stick table on the client address (SourceBased). A changed configuration is checked
(``haproxy -c``) before the running haproxy is replaced (``-sf``: the old one finishes its
connections), so a bad one never takes the working one down.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import InvalidParameterError

from . import system
from .spec import LoadBalancer, RouterSpec

MARKER = "haproxy"
ALGORITHMS = {"roundrobin": "roundrobin", "leastconn": "leastconn", "source": "source"}


def _stickiness(lb: LoadBalancer) -> list[str]:
    if lb.stickiness is None:
        return []
    method, params = lb.stickiness
    options = dict(params)
    if method == "LbCookie":
        name = options.get("cookie-name") or options.get("name") or f"SRV{lb.id}"
        return [f"    cookie {name} insert indirect nocache"]
    if method == "AppCookie":
        name = options.get("cookie-name") or options.get("name") or "JSESSIONID"
        length = options.get("length", "52")
        expire = options.get("holdtime", "3h")
        return [f"    stick-table type string len {length} size 200k expire {expire}",
                f"    stick on req.cook({name})", f"    stick store-response res.cook({name})"]
    if method == "SourceBased":
        size = options.get("tablesize", "200k")
        expire = options.get("expire", "30m")
        return [f"    stick-table type ip size {size} expire {expire}", "    stick on src"]
    raise InvalidParameterError(f"stickiness method {method!r} is not LbCookie, AppCookie or SourceBased")


def config(spec: RouterSpec, state: Path) -> str:
    """The whole haproxy configuration (pure)."""
    lines = [
        "# written by Strato's virtual router; computed from the database, do not edit",
        "global",
        f"    pidfile {state / 'haproxy.pid'}",
        "    maxconn 4096",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 60s",
        "    timeout server 60s",
    ]
    for lb in sorted(spec.load_balancers, key=lambda lb: lb.id):
        http = lb.stickiness is not None and lb.stickiness[0] in ("LbCookie", "AppCookie")
        lines += [f"listen lb-{lb.id}",
                  f"    bind {lb.public}:{lb.public_port}",
                  f"    mode {'http' if http else 'tcp'}",
                  f"    balance {ALGORITHMS[lb.algorithm]}"]
        sticky = _stickiness(lb)
        lines += sticky
        cookie = lb.stickiness is not None and lb.stickiness[0] == "LbCookie"
        for index, member in enumerate(sorted(set(lb.members))):
            lines.append(f"    server m{index} {member}:{lb.private_port} check inter 2s"
                         + (f" cookie m{index}" if cookie else ""))
    return "\n".join(lines) + "\n"


def apply(spec: RouterSpec, state: Path, namespace: str) -> None:
    pidfile = state / "haproxy.pid"
    cfg = state / "haproxy.cfg"
    if not spec.load_balancers:
        stop(state)
        cfg.unlink(missing_ok=True)
        return
    text = config(spec, state)
    pid = system.read_pid(pidfile, MARKER)
    if pid is not None and cfg.exists() and cfg.read_text() == text:
        return
    candidate = state / "haproxy.cfg.new"
    candidate.write_text(text)
    system.run("haproxy", "-c", "-q", "-f", str(candidate), ns=namespace)
    candidate.replace(cfg)
    argv = ["haproxy", "-D", "-f", str(cfg), "-p", str(pidfile)]
    if pid is not None:
        argv += ["-sf", str(pid)]
    system.run(*argv, ns=namespace)
    new_pid = system.wait_for_pid(pidfile, MARKER)
    if new_pid == pid:
        raise system.ResourceUnavailableError("haproxy did not replace its old process")


def stop(state: Path) -> None:
    system.stop_pidfile(state / "haproxy.pid", MARKER)

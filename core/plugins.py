"""Plugin discovery (stevedore, by entry-point group) and registration (pluggy).

The core never calls ``pm.hook.x`` directly: ``PluginManager`` has one method
per hook, so every call site is typed and greppable.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from typing import Any

import pluggy
from stevedore import NamedExtensionManager

from . import hookspecs
from .config import PLUGIN_KINDS, Settings
from .drivers import Driver, HypervisorDriver, ImageStoreDriver, NetworkElement, PrimaryStorageDriver
from .errors import ConfigurationError, InvalidParameterError, UnsupportedError

log = logging.getLogger(__name__)

GROUPS = {kind: f"strato.{kind}" for kind in PLUGIN_KINDS}
CONTRACTS = {"hypervisors": HypervisorDriver, "storage": (PrimaryStorageDriver, ImageStoreDriver),
             "network": NetworkElement}


class PluginManager:
    """The enabled plugins of one process, and the typed facade over their hooks."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pm = pluggy.PluginManager("strato")
        self.pm.add_hookspecs(hookspecs)
        self.hypervisors: dict[str, HypervisorDriver] = {}
        self.storage: dict[str, Driver] = {}
        self.network: dict[str, NetworkElement] = {}
        if settings.trace_plugins:
            self.pm.trace.root.setwriter(lambda message: sys.stderr.write(message))
            self.pm.enable_tracing()

    # -- loading -------------------------------------------------------------

    def load(self) -> PluginManager:
        """Load every plugin named in the settings, in order. Raises
        ``ConfigurationError`` naming the plugin when one is missing or broken."""
        for kind in PLUGIN_KINDS:
            for name, target in self._load_kind(kind, self.settings.plugins.get(kind, [])):
                self._register(kind, name, target)
        self.pm.check_pending()
        self.pm.hook.strato_configure.call_historic(kwargs={"settings": self.settings})
        return self

    def _load_kind(self, kind: str, names: list[str]) -> list[tuple[str, Any]]:
        allowed = self.settings.plugin_allow_list
        blocked = [n for n in names if allowed is not None and n not in allowed]
        if blocked:
            # the configuration asks for them: say why they are off rather than drop them silently
            log.warning("%s plugin(s) %s enabled in the configuration are not loaded: STRATO_PLUGINS "
                        "allows only %s", kind, ", ".join(blocked), ", ".join(sorted(allowed)) or "nothing")
        names = [n for n in names if n not in blocked]
        if not names:
            return []
        failures: list[str] = []
        failed: set[str] = set()

        def on_failure(_manager, entrypoint, exc):
            failed.add(entrypoint.name)
            failures.append(f"{kind} plugin {entrypoint.name!r} failed to load: {exc!r}")

        def on_missing(missing):
            # stevedore counts a plugin that failed to import as missing too: it is installed
            missing = set(missing) - failed
            if missing:
                failures.append(
                    f"{kind} plugin(s) {', '.join(sorted(missing))} named in the configuration "
                    f"are not installed (no entry point in group {GROUPS[kind]!r})"
                )

        manager = NamedExtensionManager(
            GROUPS[kind], names, name_order=True, invoke_on_load=False,
            on_load_failure_callback=on_failure, on_missing_entrypoints_callback=on_missing)
        if failures:
            raise ConfigurationError("; ".join(failures))
        return [(ext.name, ext.plugin) for ext in manager]

    def _register(self, kind: str, name: str, target: Any) -> None:
        contract = CONTRACTS.get(kind)
        if contract is None:  # an api plugin is a module (or object) of hook implementations
            self.pm.register(target, name=f"{kind}:{name}")
            return
        if not (isinstance(target, type) and issubclass(target, contract)):
            raise ConfigurationError(f"{kind} plugin {name!r} is {target!r}, not a subclass of {contract}")
        try:
            driver = target(self.settings.for_plugin(name))
        except Exception as exc:
            raise ConfigurationError(f"{kind} plugin {name!r} failed to start: {exc}") from exc
        self.add_driver(kind, name, driver)

    def add_driver(self, kind: str, name: str, driver: Driver) -> None:
        """Enable an already-made driver (start-up, and tests that bring their own)."""
        getattr(self, kind)[name] = driver
        self.pm.register(driver, name=f"{kind}:{name}")

    def register(self, plugin: Any, name: str) -> None:
        """Register a module or object of hook implementations."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)

    def close(self) -> None:
        for driver in [*self.hypervisors.values(), *self.storage.values(), *self.network.values()]:
            try:
                driver.close()
            except Exception:  # close() must not raise; a broken one must not stop shut-down
                log.exception("closing %s", driver)

    # -- lookups -------------------------------------------------------------

    def hypervisor(self, hypervisor_type: str) -> HypervisorDriver:
        """The driver for CloudStack's hypervisor name (``KVM``, ``Simulator``), case-insensitive."""
        for driver in self.hypervisors.values():
            if driver.hypervisor_type.lower() == (hypervisor_type or "").lower():
                return driver
        enabled = ", ".join(d.hypervisor_type for d in self.hypervisors.values()) or "none"
        raise UnsupportedError(f"hypervisor {hypervisor_type!r} is not enabled (enabled: {enabled})")

    def primary_storage(self, provider: str) -> PrimaryStorageDriver:
        return self._storage(provider, PrimaryStorageDriver, "primary storage")

    def image_store(self, provider: str) -> ImageStoreDriver:
        return self._storage(provider, ImageStoreDriver, "image store")

    def _storage(self, provider: str, contract: type, what: str):
        driver = self.storage.get((provider or "").lower())
        if isinstance(driver, contract):
            return driver
        names = [n for n, d in self.storage.items() if isinstance(d, contract)]
        raise InvalidParameterError(
            f"no {what} provider {provider!r} is enabled (enabled: {', '.join(names) or 'none'})")

    def storage_for_url(self, url: str, contract: type) -> str:
        """The name of the enabled storage plugin that takes ``url``'s scheme."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
        for name, driver in self.storage.items():
            if isinstance(driver, contract) and scheme in driver.url_schemes:
                return name
        raise InvalidParameterError(f"no enabled storage plugin takes URLs of scheme {scheme!r}: {url}")

    # -- hooks (one method each) ---------------------------------------------

    def api_commands(self) -> list:
        return [command for result in self.pm.hook.strato_api_commands() for command in (result or [])]

    def configuration_keys(self) -> list:
        return [key for result in self.pm.hook.strato_configuration_keys() for key in (result or [])]

    def planner_avoid_hosts(self, request, candidates) -> set[int]:
        avoid: set[int] = set()
        for result in self.pm.hook.strato_planner_avoid_hosts(request=request, candidates=candidates):
            avoid.update(result or ())
        return avoid

    def vm_state_changed(self, vm_uuid: str, old_state: str, new_state: str, reason: str) -> None:
        self._notify("strato_vm_state_changed", vm_uuid=vm_uuid, old_state=old_state,
                     new_state=new_state, reason=reason)

    def job_completed(self, job_uuid: str, command: str, status: int, result: dict) -> None:
        self._notify("strato_job_completed", job_uuid=job_uuid, command=command, status=status, result=result)

    def event_recorded(self, event: dict) -> None:
        self._notify("strato_event_recorded", event=event)

    def check_access(self, caller, command: str, resource) -> bool | None:
        return self.pm.hook.strato_check_access(caller=caller, command=command, resource=resource)

    def _notify(self, hook: str, **kwargs) -> None:
        # Notifications run after the commit: a failing plugin is logged, never undoes the change.
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:
            log.exception("plugin hook %s failed", hook)

    # -- description (``strato plugins``) -------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every installed plugin of every kind: enabled or not, and driver capabilities."""
        rows = []
        for kind in PLUGIN_KINDS:
            enabled = getattr(self, kind, None) if kind in CONTRACTS else None
            enabled_names = self.settings.plugins.get(kind, [])
            for ep in _installed(GROUPS[kind]):
                row = {"kind": kind, "name": ep.name, "target": ep.value,
                       "enabled": ep.name in enabled_names, "capabilities": {}}
                if enabled and ep.name in enabled:
                    driver = enabled[ep.name]
                    row["capabilities"] = dict(driver.capabilities)
                    if isinstance(driver, HypervisorDriver):
                        row["hypervisor"] = driver.hypervisor_type
                rows.append(row)
        return rows


def _installed(group: str) -> list:
    """All entry points of ``group``, without importing them, so a broken plugin still lists."""
    return sorted(entry_points(group=group), key=lambda ep: ep.name)

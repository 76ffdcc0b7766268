"""Global settings kept in the database, CloudStack style (``listConfigurations``).

Unlike ``core.config`` (how this process starts), these are the cloud's
policies, changed at run time by ``updateConfiguration``. Plugins add keys
through the ``strato_configuration_keys`` hook.
"""

from __future__ import annotations

import dataclasses
import math
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import InvalidParameterError
from .model import Configuration


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    name: str
    category: str
    default: str
    description: str
    value_type: str = "String"  # String | Integer | Float | Boolean
    #: the range an Integer or Float value must lie in (inclusive); None: unbounded on that side.
    #: Integers are always within 64 bits and Floats finite: a value the code using the
    #: setting cannot compute with would break every request that reads it.
    minimum: float | None = None
    maximum: float | None = None
    #: a String value must match this whole (``re.fullmatch``); ``allowed`` says so in words
    pattern: str | None = None
    allowed: str = ""

    def parse(self, value: str | None):
        value = self.default if value is None else value
        try:
            if self.value_type == "Integer":
                return self._in_range(value, int(value), -2**63, 2**63 - 1)
            if self.value_type == "Float":
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(value)
                return self._in_range(value, number, None, None)
            if self.value_type == "Boolean":
                if str(value).lower() not in ("true", "false"):
                    raise ValueError(value)
                return str(value).lower() == "true"
        except ValueError:
            raise InvalidParameterError(
                f"{self.name} takes a value of type {self.value_type}, not {value!r}") from None
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise InvalidParameterError(f"{self.name} takes {self.allowed}, not {value!r}")
        return value

    def _in_range(self, text, number, low, high):
        low = self.minimum if self.minimum is not None else low
        high = self.maximum if self.maximum is not None else high
        if (low is not None and number < low) or (high is not None and number > high):
            span = f"from {low:g}" if high is None else f"up to {high:g}" if low is None else f"from {low:g} to {high:g}"
            raise InvalidParameterError(f"{self.name} takes a value {span}, not {text!r}")
        return number


CORE_KEYS = [
    ConfigKey("cpu.overprovisioning.factor", "Advanced", "1.0",
              "CPU overprovisioning a new cluster starts with (each cluster then keeps its own)", "Float",
              minimum=0.01, maximum=1000),
    ConfigKey("mem.overprovisioning.factor", "Advanced", "1.0",
              "Memory overprovisioning a new cluster starts with (each cluster then keeps its own)", "Float",
              minimum=0.01, maximum=1000),
    ConfigKey("storage.overprovisioning.factor", "Storage", "2.0",
              "Overprovisioning of thin-provisioned primary storage", "Float", minimum=0.01, maximum=1000),
    ConfigKey("cluster.cpu.allocated.capacity.disablethreshold", "Alert", "0.85",
              "Allocated share of a cluster's CPU above which the planner skips the cluster", "Float",
              minimum=0, maximum=1),
    ConfigKey("cluster.memory.allocated.capacity.disablethreshold", "Alert", "0.85",
              "Allocated share of a cluster's memory above which the planner skips the cluster", "Float",
              minimum=0, maximum=1),
    ConfigKey("pool.storage.allocated.capacity.disablethreshold", "Alert", "0.85",
              "Allocated share of a primary pool above which no new volume is placed on it", "Float",
              minimum=0, maximum=1),
    ConfigKey("default.page.size", "Advanced", "500", "Default and maximum page size of list commands", "Integer",
              minimum=1, maximum=2**31 - 1),
    ConfigKey("expunge.delay", "Advanced", "86400",
              "Seconds a destroyed VM waits before it is expunged", "Integer", minimum=0,
              maximum=100 * 365 * 86400),
    ConfigKey("job.expire.minutes", "Advanced", "1440", "Minutes a finished async job is kept", "Integer",
              minimum=1, maximum=100 * 365 * 1440),
    ConfigKey("ping.interval", "Advanced", "60", "Seconds between host pings", "Integer", minimum=1, maximum=86400),
    ConfigKey("vm.destroy.forcestop", "Advanced", "false", "Force-stop a VM when destroying it", "Boolean"),
    ConfigKey("allow.user.expunge.recover.vm", "Advanced", "false",
              "Users may expunge (destroy with expunge=true, expungeVirtualMachine) and recover their VMs", "Boolean"),
    ConfigKey("allow.user.view.destroyed.vm", "Advanced", "false",
              "Users see their Destroyed VMs in listVirtualMachines", "Boolean"),
    ConfigKey("vmsnapshot.max", "Advanced", "10", "Maximum VM snapshots a VM may have", "Integer"),
    # read when a VM is created: its instance name i-<account id>-<vm id>-<instance.name> never changes.
    # CloudStack refuses hyphens (names are split on them), spaces and "+"; the hypervisors also need
    # a file and domain name, hence letters and digits only; 32 leave room for two 10-digit ids in a
    # 63-character host-name label.
    ConfigKey("instance.name", "Advanced", "VM",
              "Name of the deployment instance: the last part of new VMs' instance names", "String",
              pattern=r"[A-Za-z0-9]{1,32}",
              allowed="1 to 32 letters and digits (no hyphens, spaces, '+', '/' or other signs: "
                      "VMs are named i-<account id>-<vm id>-<instance.name>)"),
]


def core_value(session: Session, name: str):
    """A core setting's value where no ``Cloud`` is at hand (plugins' keys need ``cloud.config``)."""
    return GlobalConfig(CORE_KEYS).get(session, name)


class GlobalConfig:
    """Typed access to the settings table."""

    def __init__(self, keys: list[ConfigKey]):
        self.keys = {key.name: key for key in keys}

    def seed(self, session: Session) -> None:
        """Insert rows for keys the table does not have yet; existing values stay."""
        present = set(session.scalars(select(Configuration.name)))
        for key in self.keys.values():
            if key.name not in present:
                session.add(Configuration(name=key.name, category=key.category, value=key.default,
                                          default_value=key.default, description=key.description,
                                          value_type=key.value_type))

    def get(self, session: Session, name: str):
        key = self.keys[name]
        row = session.get(Configuration, name)
        return key.parse(row.value if row else None)

    def set(self, session: Session, name: str, value: str) -> Configuration:
        key = self.keys.get(name)
        row = session.get(Configuration, name)
        if key is None or row is None:
            raise InvalidParameterError(f"Configuration {name!r} does not exist")
        key.parse(value)  # raises 431 for a value of the wrong type
        row.value = value
        return row

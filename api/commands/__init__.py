"""The built-in API commands, one module per resource family.

Every ``ApiCommand`` defined (or imported) at the top level of a module in this
package is a built-in command; ``builtin_commands`` finds them all, so adding a
module is all it takes to add commands.
"""

from __future__ import annotations

import importlib
import pkgutil

from core.commands import ApiCommand, collect


def builtin_commands() -> list[ApiCommand]:
    """Every command of every module of this package, each once, modules in name order.

    A module that fails to import stops this with its own error: a broken command
    module is a broken installation, not a smaller API.
    """
    found: dict[int, ApiCommand] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for command in collect(module):
            found.setdefault(id(command), command)
    return list(found.values())

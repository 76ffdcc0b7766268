"""The command table: every command the native API answers, found by name.

Built once, when the app is made, from the built-in commands and the plugins'
(``strato_api_commands``). Two different commands whose names differ only in
case clash, and the table refuses to be built.

Lookup ignores case. CloudStack's own is case-sensitive (a ``HashMap`` of the
annotated names), but every response name is the lowercased command name
anyway, so answering ``listzones`` as ``listZones`` changes nothing for a client
that spells it right and helps the ones that don't.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from core.access import Caller
from core.commands import ApiCommand
from core.errors import ConfigurationError


class CommandTable:
    def __init__(self, sources: Iterable[tuple[str, Iterable[ApiCommand]]]):
        """``sources`` pairs a description of where commands come from ("built-in",
        "plugins") with the commands. Raises ``ConfigurationError`` on a clash."""
        self._commands: dict[str, ApiCommand] = {}
        origin: dict[str, str] = {}
        for source, commands in sources:
            for command in commands:
                if not isinstance(command, ApiCommand):
                    raise ConfigurationError(f"{source} gave {command!r} as an API command; "
                                             f"declare commands with core.commands.api_command")
                key = command.lower_name
                present = self._commands.get(key)
                if present is command:  # one command reached twice (a module importing another's)
                    continue
                if present is not None:
                    raise ConfigurationError(
                        f"API command {command.name!r} from {source} clashes with {present.name!r} "
                        f"from {origin[key]}; command names must be unique (ignoring case)")
                self._commands[key] = command
                origin[key] = source

    def find(self, name: str | None) -> ApiCommand | None:
        return self._commands.get(name.lower()) if name else None

    def available_to(self, caller: Caller, session=None) -> list[ApiCommand]:
        """The commands ``caller``'s role may call, by name: its dynamic role's rules
        (``core.roles``) with ``session``, else the commands' declared ``roles``."""
        if session is None:
            return [command for command in self if caller.role_type in command.roles]
        from core import roles

        checker = roles.checker_for(session, caller)
        return [command for command in self if checker.allows(command)]

    def __iter__(self) -> Iterator[ApiCommand]:
        return iter(sorted(self._commands.values(), key=lambda command: command.name))

    def __len__(self) -> int:
        return len(self._commands)

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None

"""One native API request as the dispatcher sees it: merged parameters, method, cookies.

Query and form parameters merge; for a name in both, the query string's value
wins (CloudStack's servlet re-reads the query string last). A name given twice
in one place counts once, by its first value, as the servlet's ``getParameter``.
"""

from __future__ import annotations

import dataclasses
import re

from werkzeug.exceptions import HTTPException

from core.errors import InvalidParameterError

from . import envelope

#: parameters of the protocol itself, never handed to a command (matched in any case)
PROTOCOL_PARAMS = frozenset({"command", "response", "apikey", "signature", "signatureversion", "expires",
                             "sessionkey", "_"})

# What CloudStack refuses in a parameter value (ApiServer.checkCharacterInkParams):
# ASCII control characters other than line feed and carriage return.
_CONTROL = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


@dataclasses.dataclass
class ApiRequest:
    method: str
    params: dict[str, str]
    cookies: dict[str, str]
    remote_addr: str | None = None

    @classmethod
    def from_flask(cls, request) -> ApiRequest:
        """Read a Flask request. Raises 431 when the body cannot be read as parameters."""
        try:
            params = {key: value for key, value in request.form.items()}
        except HTTPException as exc:  # malformed or oversized body: the client's fault, said in the envelope
            raise InvalidParameterError(f"Unable to read the request parameters: {exc.description}") from None
        params.update(request.args.items())
        return cls(request.method.upper(), params, dict(request.cookies), request.remote_addr)

    def get(self, name: str) -> str | None:
        """A parameter by name in any case (clients differ: apiKey, apikey, ...)."""
        if name in self.params:
            return self.params[name]
        lowered = name.lower()
        return next((v for k, v in self.params.items() if k.lower() == lowered), None)

    @property
    def command(self) -> str | None:
        return self.params.get("command")

    @property
    def format(self) -> str:
        return envelope.response_format(self.get("response"))

    def command_params(self) -> dict[str, str]:
        """The parameters meant for the command: all but the protocol's own."""
        return {k: v for k, v in self.params.items() if k.lower() not in PROTOCOL_PARAMS}

    def control_character_param(self) -> str | None:
        """The first parameter whose value holds a control character CloudStack refuses."""
        return next((k for k, v in self.params.items() if _CONTROL.search(v)), None)

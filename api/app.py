"""The Flask application factory.

``create_app(cloud)`` builds the command table once (built-in commands, then the
plugins'), and serves the native API at ``/client/api``. A command name that
clashes stops the creation with ``ConfigurationError``.
"""

from __future__ import annotations

import flask

from .commands import builtin_commands
from .commands.template_transfer import EXTRACT_PATH, serve_extract
from .native.dispatch import Dispatcher
from .native.table import CommandTable

API_PATH = "/client/api"
#: every method is routed to the dispatcher, which answers the ones it does not take with a 405 envelope
ROUTED_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
#: userdata may be 1 MiB (and more once encoded); anything far beyond that is refused
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def create_app(cloud) -> flask.Flask:
    """The WSGI app of ``cloud``. ``cloud`` should be started (``Cloud.start``) for async jobs to run."""
    commands = CommandTable([("the built-in commands", builtin_commands()),
                             ("the plugins", cloud.plugins.api_commands())])
    dispatcher = Dispatcher(cloud, commands)
    app = flask.Flask("strato")
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES)
    app.extensions["strato"] = {"cloud": cloud, "commands": commands}

    def native_api():
        return dispatcher(flask.request)

    app.add_url_rule(API_PATH, "native_api", native_api, methods=ROUTED_METHODS, strict_slashes=False,
                     provide_automatic_options=False)

    # extractTemplate's download links (the token is the credential; see template_transfer)
    app.add_url_rule(f"{EXTRACT_PATH}/<token>/<path:name>", "extract",
                     lambda token, name: serve_extract(cloud, token), methods=["GET"])
    return app

"""Serving the app over HTTP: werkzeug's threaded server, one thread per request.

Enough for the embedded default and a lab; behind a load balancer, run the app
(``api.app.create_app``) in any WSGI server instead.
"""

from __future__ import annotations

import logging

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import API_PATH, create_app

log = logging.getLogger(__name__)


class _RequestHandler(WSGIRequestHandler):
    """Logs each request without its query string: it carries apiKey, signature and sessionkey."""

    def log_request(self, code="-", size="-") -> None:
        path = self.path.split("?", 1)[0]
        self.log("info", '"%s %s" %s %s', self.command, path, code, size)


def build_server(cloud, host: str, port: int) -> BaseWSGIServer:
    """A bound, not yet serving, server of ``cloud``'s app (port 0 picks a free one)."""
    return make_server(host, port, create_app(cloud), threaded=True, request_handler=_RequestHandler)


def serve(cloud, host: str, port: int) -> None:
    """Serve ``cloud``'s API until interrupted. The caller starts and closes ``cloud``."""
    server = build_server(cloud, host, port)
    log.info("Strato API listening on http://%s:%d%s", host, server.server_port, API_PATH)
    try:
        server.serve_forever()
    finally:
        server.server_close()

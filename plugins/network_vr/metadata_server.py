"""The router's metadata HTTP server: ``metadata_server.py DATA_FILE ADDRESS PORT PIDFILE``.

Answers ``/latest/user-data`` and ``/latest/meta-data[/<item>]`` for the guest whose
source address asks, from DATA_FILE (written by ``metadata.py``; re-read when it changes).
Standard library only, so it starts in milliseconds inside the router's namespace.
"""

import base64
import binascii
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind resolves its own name (socket.getfqdn): inside a router
        # whose default route leads to the public side that can hang for seconds
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Store:
    def __init__(self, path: Path):
        self.path, self.mtime, self.entries = path, None, {}

    def get(self, address: str) -> dict | None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime != self.mtime:
            self.entries, self.mtime = json.loads(self.path.read_text()), mtime
        return self.entries.get(address)


def _handler(store: _Store):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            entry = store.get(self.client_address[0])
            path = self.path.split("?", 1)[0].rstrip("/")
            if entry is None:
                return self._send(404, b"unknown guest\n")
            if path in ("/latest/user-data", "/latest/userdata"):
                if not entry["user-data"]:
                    return self._send(404, b"no user data\n")
                try:
                    return self._send(200, base64.b64decode(entry["user-data"]))
                except (binascii.Error, ValueError):
                    return self._send(500, b"user data is not base64\n")
            if path in ("/latest/meta-data", "/latest/metadata"):
                return self._send(200, ("\n".join(sorted(entry["meta-data"])) + "\n").encode())
            for prefix in ("/latest/meta-data/", "/latest/metadata/"):
                if path.startswith(prefix) and path[len(prefix):] in entry["meta-data"]:
                    return self._send(200, str(entry["meta-data"][path[len(prefix):]]).encode())
            return self._send(404, b"not found\n")

        def _send(self, status: int, body: bytes):
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))

    return Handler


def serve(data_file: str, address: str, port: int, pidfile: str) -> None:
    server = _Server((address, port), _handler(_Store(Path(data_file))))
    Path(pidfile).write_text(f"{os.getpid()}\n")
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])

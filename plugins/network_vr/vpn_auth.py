"""OpenVPN's ``auth-user-pass-verify`` for the router's VPN: ``vpn_auth.py USERS_FILE CREDENTIALS_FILE``.

OpenVPN writes the client's username and password to CREDENTIALS_FILE (two lines) and
lets the client in when this exits 0. USERS_FILE maps usernames to PBKDF2-SHA256 hashes
in ``core.passwords``' format; it is re-read at every login, so VPN users change without
restarting the server. Standard library only: OpenVPN runs this as a plain script.
"""

import base64
import hashlib
import hmac
import json
import sys


def verify(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def main(argv: list[str]) -> int:
    users_file, credentials_file = argv[1], argv[2]
    with open(credentials_file) as f:
        lines = f.read().split("\n")
    username, password = (lines + ["", ""])[:2]
    with open(users_file) as f:
        users = json.load(f)
    stored = users.get(username)
    return 0 if stored is not None and verify(password, stored) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

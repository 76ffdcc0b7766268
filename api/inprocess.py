"""A signed CloudStack API client that calls the app in-process (Flask's test client).

The demo builds its cloud through it, so it goes through exactly the commands a
remote client would use; tests use it for the same reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse

from sqlalchemy import select


def sign(params: dict[str, str], secret: str) -> str:
    """CloudStack's request signature, computed as the ``cs`` library does."""
    query = "&".join(f"{k}={urllib.parse.quote(str(v), safe='*')}" for k, v in sorted(params.items()))
    digest = hmac.new(secret.encode(), query.lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def user_keys(cloud, username: str, domain_id: int | None = None) -> tuple[str, str]:
    """The user's API and secret keys, made on first use."""
    from core.model import User
    from core.passwords import new_key

    with cloud.db.transaction() as session:
        query = select(User).where(User.username == username, User.removed.is_(None))
        if domain_id is not None:
            query = query.where(User.domain_id == domain_id)
        user = session.scalars(query).one()
        if not user.api_key:
            user.api_key, user.secret_key = new_key(), new_key()
        return user.api_key, user.secret_key


class ApiError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(f"{status}: {body.get('errortext')}")
        self.status, self.body = status, body


class InProcessClient:
    def __init__(self, app, api_key: str, secret_key: str):
        self.http = app.test_client()
        self.api_key, self.secret_key = api_key, secret_key

    def raw(self, command: str, method: str = "GET", **params):
        """The Flask response of a signed call (JSON unless ``response`` is given)."""
        params = {"command": command, "response": "json", "apiKey": self.api_key,
                  **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()
                     if v is not None}}
        params["signature"] = sign(params, self.secret_key)
        if method == "GET":
            return self.http.get("/client/api", query_string=params)
        return self.http.post("/client/api", data=params)

    def __call__(self, command: str, **params) -> dict:
        """The unwrapped response body; raises ``ApiError`` on an error envelope."""
        response = self.raw(command, **params)
        body = response.get_json()
        (_key, value), = body.items()
        if response.status_code != 200:
            raise ApiError(response.status_code, value)
        return value

    def wait(self, job: dict, timeout: float = 60.0) -> dict:
        """Poll queryAsyncJobResult until the job ends; its jobresult, or ApiError if it failed."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while time.monotonic() < deadline:
            result = self("queryAsyncJobResult", jobid=job["jobid"])
            if result["jobstatus"] == 1:
                return result["jobresult"]
            if result["jobstatus"] == 2:
                raise ApiError(result["jobresult"]["errorcode"], result["jobresult"])
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        raise TimeoutError(f"job {job['jobid']} did not finish in {timeout}s")

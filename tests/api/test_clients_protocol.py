"""The real clients against a real HTTP server: the cs library and CLI, libcloud, and cmk's way.

Nothing here is mocked: each client signs and sends its requests with its own
code, over a socket, to the app served by werkzeug.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
import urllib.parse
from pathlib import Path

import pytest
import requests
from cs import CloudStack, CloudStackApiException
from libcloud.common.types import InvalidCredsError, ProviderError
from libcloud.compute.drivers.cloudstack import CloudStackNodeDriver

from api.server import build_server
from tests.api.test_native_signing import _go_query_escape, cmk_signature
from tests.api.test_native_support import module_fixtures

CS_CLI = Path(sys.executable).with_name("cs")

cloud, app = module_fixtures()


@pytest.fixture(scope="module")
def live_server(app, cloud):
    """One server for the module, made by ``api.server`` as ``strato`` serves (conftest's is per test)."""
    server = build_server(cloud, "127.0.0.1", 0)  # ``app`` registered the test commands' plugin first
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield types.SimpleNamespace(url=f"http://127.0.0.1:{server.server_port}/client/api")
    server.shutdown()
    server.server_close()
    thread.join(5)


def cs_client(admin, live_server, **options) -> CloudStack:
    return CloudStack(endpoint=live_server.url, key=admin.api_key, secret=admin.secret_key, poll_interval=0.05,
                      job_timeout=20, **options)


# -- cs, the library ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("v3", [True, False])
def test_cs_library(admin, live_server, method, v3):
    # cs signs with signatureVersion=3 and an expiry unless told not to (a negative expiration)
    cs = cs_client(admin, live_server, method=method, expiration=600 if v3 else -1)
    apis = cs.listApis(fetch_list=True)
    assert {"listApis", "queryAsyncJobResult", "testEcho"} <= {api["name"] for api in apis}
    assert cs.listCapabilities()["capability"]["cloudstackversion"] == "4.19.0.0"
    echo = cs.testEcho(name="n", text="spaces, *stars*, [brackets], ümlauts & 日本語 + plus",
                       details={"key": "a b", "value": "c*d"})["echo"]
    assert echo["text"] == "spaces, *stars*, [brackets], ümlauts & 日本語 + plus"
    assert echo["details"] == [{"key": "a b", "value": "c*d"}]
    assert cs.testAsync(text="later", fetch_result=True) == {"echo": {"text": "later"}}


def test_cs_library_sees_errors(admin, live_server):
    cs = cs_client(admin, live_server)
    with pytest.raises(CloudStackApiException) as failure:
        cs.noSuchCommand()
    assert failure.value.error["errorcode"] == 432
    with pytest.raises(CloudStackApiException) as failure:
        cs.testAsync(fail=True, fetch_result=True)
    assert failure.value.error == {"errorcode": 533, "errortext": "no host has room for the echo"}
    wrong = CloudStack(endpoint=live_server.url, key=admin.api_key, secret="wrong")
    with pytest.raises(CloudStackApiException) as failure:
        wrong.listApis()
    assert failure.value.response.status_code == 401


# -- cs, the command line ----------------------------------------------------------------


def _cs_cli(admin, live_server, tmp_path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLOUDSTACK_ENDPOINT": live_server.url, "CLOUDSTACK_KEY": admin.api_key,
           "CLOUDSTACK_SECRET": admin.secret_key, "HOME": str(tmp_path)}
    env.pop("CLOUDSTACK_CONFIG", None)
    env.pop("CLOUDSTACK_OVERRIDES", None)
    return subprocess.run([str(CS_CLI), *args], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_cs_cli(admin, live_server, tmp_path):
    done = _cs_cli(admin, live_server, tmp_path, "listApis", "name=testEcho")
    assert done.returncode == 0, done.stderr
    assert [api["name"] for api in json.loads(done.stdout)["api"]] == ["testEcho"]
    posted = _cs_cli(admin, live_server, tmp_path, "--post", "testEcho", "name=cli", "text=a b*c")
    assert posted.returncode == 0, posted.stderr
    assert json.loads(posted.stdout)["echo"]["text"] == "a b*c"
    failed = _cs_cli(admin, live_server, tmp_path, "testEcho")
    assert failed.returncode != 0 and json.loads(failed.stdout)["testechoresponse"]["errorcode"] == 431


# -- libcloud --------------------------------------------------------------------------------


def _driver(admin, live_server, secret=None) -> CloudStackNodeDriver:
    driver = CloudStackNodeDriver(key=admin.api_key, secret=secret or admin.secret_key, url=live_server.url,
                                  secure=False)
    driver.connection.poll_interval = 0.05
    return driver


def test_libcloud(admin, live_server):
    connection = _driver(admin, live_server).connection
    apis = connection._sync_request("listApis")
    assert apis["count"] == len(apis["api"]) and "testEcho" in {api["name"] for api in apis["api"]}
    assert connection._sync_request("listCapabilities")["capability"]["cloudstackversion"] == "4.19.0.0"
    echo = connection._sync_request("testEcho", params={"name": "n", "text": "libcloud [0] *x* é"})["echo"]
    assert echo["text"] == "libcloud [0] *x* é"
    assert connection._async_request("testAsync", params={"text": "polled"}) == {"echo": {"text": "polled"}}
    job = connection._sync_request("testAsync", params={"text": "again"})
    result = connection._sync_request("queryAsyncJobResult", params={"jobid": job["jobid"]})
    assert result["jobid"] == job["jobid"]


def test_libcloud_sees_errors(admin, live_server):
    with pytest.raises(InvalidCredsError):
        _driver(admin, live_server, secret="wrong").connection._sync_request("listApis")
    with pytest.raises(ProviderError) as failure:
        _driver(admin, live_server).connection._sync_request("testEcho")
    assert failure.value.http_code == 431 and "missing parameter name" in failure.value.value


# -- cmk's way -------------------------------------------------------------------------------


def test_cmk_style_signed_get(admin, live_server):
    """cmk builds the URL itself: QueryEscape'd values (a space as '+'), then &signature=..."""
    params = {"command": "testEcho", "name": "cmk", "text": "go style * and spaces", "response": "json",
              "apiKey": admin.api_key}
    query = "&".join(f"{k}={_go_query_escape(params[k])}" for k in sorted(params))
    signature = _go_query_escape(cmk_signature(params, admin.secret_key))
    response = requests.get(f"{live_server.url}?{query}&signature={signature}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["testechoresponse"]["echo"]["text"] == "go style * and spaces"


def test_cmk_style_login_then_session_key(live_server):
    """cmk logs in by PostForm, takes the sessionkey cookie, then GETs with sessionkey=..."""
    http = requests.Session()
    login = http.post(live_server.url, data={"command": "login", "username": "admin", "password": "password",
                                             "domain": "/", "response": "json"}, timeout=10)
    assert login.status_code == 200
    key = http.cookies["sessionkey"]
    assert key == login.json()["loginresponse"]["sessionkey"]
    query = urllib.parse.urlencode({"command": "listApis", "response": "json", "sessionkey": key})
    listed = http.get(f"{live_server.url}?{query}", timeout=10)
    assert listed.status_code == 200 and listed.json()["listapisresponse"]["count"] > 0
    http.get(f"{live_server.url}?command=logout&response=json&sessionkey={key}", timeout=10)
    assert http.get(f"{live_server.url}?{query}", timeout=10).status_code == 401

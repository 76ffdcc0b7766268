"""Email invitations to projects are mailed through a real SMTP server (aiosmtpd on 127.0.0.1):
the invited account takes the token out of the mail and accepts with it."""

from __future__ import annotations

import email
import email.policy
import logging
import re
import socket
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.api.test_identity_project_roles import invite_required, members, world  # noqa: F401 (fixture)
from tests.api.test_identity_projects import error


class Inbox:
    """What the SMTP server received: (envelope sender, recipients, parsed message)."""

    def __init__(self):
        self.mails: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos),
                           email.message_from_bytes(envelope.content, policy=email.policy.default)))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=free_port())
    server.start()
    inbox.port = server.port
    yield inbox
    server.stop()


def mail_settings(admin, port: int, **more) -> None:
    for name, value in {"project.smtp.host": "127.0.0.1", "project.smtp.port": str(port),
                        "project.email.sender": "cloud@example.org", "project.smtp.useAuth": "false",
                        **more}.items():
        admin("updateConfiguration", name=name, value=value)


def token_of(message) -> str:
    found = re.search(r"token \[([0-9A-Z]{10})\]", message.get_content())
    assert found, message.get_content()
    return found.group(1)


def test_an_email_invitation_is_mailed_and_accepted_with_the_token_in_the_mail(world, admin, smtp):
    owner, member, outsider, project = (world[k] for k in ("owner", "member", "outsider", "project"))
    invite_required(admin)
    mail_settings(admin, smtp.port)
    owner.wait(owner("addAccountToProject", projectid=project["id"], email="outsider@example.com",
                     roletype="Admin"))
    [(sender, recipients, message)] = smtp.mails
    assert (sender, recipients) == ("cloud@example.org", ["outsider@example.com"])
    assert (message["From"], message["To"]) == ("cloud@example.org", "outsider@example.com")
    assert "apollo" in message["Subject"] and project["id"] in message.get_content()
    token = token_of(message)
    listed = owner("listProjectInvitations", projectid=project["id"])["projectinvitation"]
    assert [(i["email"], i["state"]) for i in listed] == [("outsider@example.com", "Pending")]
    assert "token" not in listed[0], "the token is only in the mail"
    assert error(owner, "addAccountToProject", projectid=project["id"],
                 email="outsider@example.com").status == 431, "one pending invitation per address"

    assert error(outsider, "updateProjectInvitation", projectid=project["id"], token="WRONG00000").status == 431
    outsider.wait(outsider("updateProjectInvitation", projectid=project["id"], token=token, accept=True))
    assert members(owner, project)["outsider"] == ("Admin", None), "with the invitation's role"
    assert error(member, "updateProjectInvitation", projectid=project["id"], token=token).status == 431, "used"
    assert len(smtp.mails) == 1


def test_without_a_mail_server_an_email_invitation_is_refused(world, admin):
    owner, project = world["owner"], world["project"]
    invite_required(admin)
    failure = error(owner, "addAccountToProject", projectid=project["id"], email="someone@example.com")
    assert failure.status == 431 and "project.smtp.host" in failure.body["errortext"]
    admin("updateConfiguration", name="project.smtp.host", value="127.0.0.1")
    failure = error(owner, "addAccountToProject", projectid=project["id"], email="someone@example.com")
    assert failure.status == 431 and "project.email.sender" in failure.body["errortext"]
    admin("updateConfiguration", name="project.email.sender", value="cloud@example.org")
    assert error(owner, "addAccountToProject", projectid=project["id"], email="not an address").status == 431
    assert owner("listProjectInvitations", projectid=project["id"]) == {}, "nothing was written"


def test_a_mail_that_cannot_be_sent_keeps_the_invitation_and_says_how_to_resend(world, admin, smtp, caplog):
    owner, outsider, project = world["owner"], world["outsider"], world["project"]
    invite_required(admin)
    mail_settings(admin, free_port())  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="api.commands.projects"):
        failure = error(owner.wait, owner("addAccountToProject", projectid=project["id"], email="outsider@example.com"))
    assert failure.status == 534
    assert "deleteProjectInvitation" in failure.body["errortext"] and "outsider@example.com" in failure.body["errortext"]
    assert any("could not be sent" in record.getMessage() for record in caplog.records)
    [invitation] = owner("listProjectInvitations", projectid=project["id"])["projectinvitation"]
    assert invitation["state"] == "Pending", "the invitation stays"

    mail_settings(admin, smtp.port)  # fixed: delete and add again to resend
    owner.wait(owner("deleteProjectInvitation", id=invitation["id"]))
    owner.wait(owner("addAccountToProject", projectid=project["id"], email="outsider@example.com"))
    [(_, _, message)] = smtp.mails
    outsider.wait(outsider("updateProjectInvitation", projectid=project["id"], token=token_of(message)))
    assert members(owner, project)["outsider"] == ("Regular", None)


@pytest.fixture
def smtps(tmp_path, monkeypatch):
    """An SMTPS server (implicit TLS, as CloudStack uses with useAuth) with a self-signed certificate
    for 127.0.0.1 that the client trusts through SSL_CERT_FILE, and one login: cloud / s3cret-pw."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    inbox.logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        inbox.logins.append(auth_data.login)
        ok = (auth_data.login, auth_data.password) == (b"cloud", b"s3cret-pw")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235/535 itself

    server = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=context,
                        authenticator=authenticator, auth_required=True,
                        auth_require_tls=False)  # aiosmtpd sees only STARTTLS as TLS; this is SMTPS
    server.start()
    inbox.port = server.port
    yield inbox
    server.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the test server's SMTPS
def test_smtp_authentication_over_tls_and_the_password_is_never_shown(world, admin, smtps, caplog):
    owner, outsider, project = world["owner"], world["outsider"], world["project"]
    invite_required(admin)
    with caplog.at_level(logging.DEBUG):
        mail_settings(admin, smtps.port, **{"project.smtp.useAuth": "true", "project.smtp.username": "cloud",
                                            "project.smtp.password": "wrong-pw"})
        failure = error(owner.wait, owner("addAccountToProject", projectid=project["id"], email="outsider@example.com"))
        assert failure.status == 534 and "Authentication" in failure.body["errortext"]
        admin("updateConfiguration", name="project.smtp.password", value="s3cret-pw")
        invitation = owner("listProjectInvitations", projectid=project["id"])["projectinvitation"][0]
        owner.wait(owner("deleteProjectInvitation", id=invitation["id"]))
        owner.wait(owner("addAccountToProject", projectid=project["id"], email="outsider@example.com"))
    assert set(smtps.logins) == {b"cloud"}, "it logged in (smtplib tries PLAIN, then LOGIN)"
    [(_, _, message)] = smtps.mails
    outsider.wait(outsider("updateProjectInvitation", projectid=project["id"], token=token_of(message)))
    assert "outsider" in members(owner, project)

    events = admin("listEvents", listall=True, type="CONFIGURATION.VALUE.EDIT")["event"]
    assert "Set project.smtp.password to *****" in [e["description"] for e in events]
    shown = repr(admin("listEvents", listall=True)) + "\n".join(r.getMessage() for r in caplog.records)
    assert "s3cret-pw" not in shown and "wrong-pw" not in shown

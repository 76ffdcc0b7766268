"""Outgoing mail through the SMTP server a group of settings names (CloudStack's SMTPMailSender).

The settings of a namespace ``ns`` (e.g. ``project.smtp``) are ``ns.host``, ``ns.port``,
``ns.useAuth``, ``ns.useStartTLS``, ``ns.username`` and ``ns.password``. As in CloudStack, the
connection is plain SMTP without ``useAuth``; with it, SMTP over TLS (SMTPS) unless
``useStartTLS`` asks for a STARTTLS upgrade of a plain connection. Certificates are checked
against the system's CAs. The password is only handed to the server, never logged.
"""

from __future__ import annotations

import dataclasses
import email.message
import email.utils
import smtplib
import ssl

#: seconds to wait for the server at each step; a mail is sent outside every transaction
TIMEOUT = 30


@dataclasses.dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    use_auth: bool = False
    use_starttls: bool = False
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)  # never in a repr, so never in a log line

    @classmethod
    def from_settings(cls, config, session, namespace: str) -> SmtpServer:
        def get(name):
            return config.get(session, f"{namespace}.{name}")

        return cls(host=(get("host") or "").strip(), port=get("port"), use_auth=get("useAuth"),
                   use_starttls=get("useStartTLS"), username=(get("username") or "").strip(),
                   password=get("password") or "")

    def describe(self) -> str:
        return f"{self.host}:{self.port}"

    def send(self, sender: str, recipient: str, subject: str, text: str) -> None:
        """Deliver one plain-text mail; raises ``OSError``/``smtplib.SMTPException`` when the server
        cannot be reached, refuses the login or the mail."""
        message = email.message.EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, recipient, subject
        message["Date"] = email.utils.formatdate(localtime=False)
        message["Message-ID"] = email.utils.make_msgid()
        message.set_content(text)
        if self.use_auth and not self.use_starttls:
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
        with client:
            if self.use_auth and self.use_starttls:
                client.starttls(context=ssl.create_default_context())
            if self.use_auth and self.username and self.password:
                client.login(self.username, self.password)
            client.send_message(message)


__all__ = ["SmtpServer", "TIMEOUT"]

"""A real SMTP server for the email tests: aiosmtpd on a free loopback port, collecting every
delivered message (parsed with the modern ``email`` policy), and settings that point at it."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from recommender.settings import Settings

SECRET = "test-secret-key-" + "x" * 32


class Collector:
    """aiosmtpd handler: keeps ``(envelope recipients, parsed message)`` of each delivery."""

    def __init__(self) -> None:
        self.delivered: list[tuple[list[str], EmailMessage]] = []
        self.reject: set[str] = set()  # recipients answered with 550

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.reject:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.delivered.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    @property
    def messages(self) -> list[EmailMessage]:
        return [message for _, message in self.delivered]

    def to(self, address: str) -> list[EmailMessage]:
        return [message for rcpt, message in self.delivered if address in rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[Collector, int]]:
    from aiosmtpd.controller import Controller

    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield collector, controller.port
    finally:
        controller.stop()


def mail_fields(port: int) -> dict[str, Any]:
    """Settings that send the daily email to the test mailbox listening on ``port``."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "secret_key": SECRET,
        "public_url": "https://paperfeed.test",
        "email_sender": "Paperfeed <digest@paperfeed.test>",
    }


@pytest.fixture
def mail_settings(settings: Settings, mailbox: tuple[Collector, int]) -> Settings:
    return dataclasses.replace(settings, **mail_fields(mailbox[1]), digest_size=5)


@pytest.fixture
def mail_app(mail_settings: Settings, redis_client: Any) -> Any:
    from server.app import create_app

    app = create_app(mail_settings, redis=redis_client)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def mail_client(mail_app: Any) -> Any:
    return mail_app.test_client()

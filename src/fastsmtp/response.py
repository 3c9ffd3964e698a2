"""The reply type: one complete SMTP reply (RFC 5321 section 4.2)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ("SMTPResponse",)


class SMTPResponse(NamedTuple):
    """A server reply: the three-digit ``code`` and the text of all its lines joined by newlines."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"

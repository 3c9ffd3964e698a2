"""Backwards-compatible home of :class:`SMTPStatus` (the same object as ``fastsmtp.typing``)."""

from __future__ import annotations

from .typing import SMTPStatus

__all__ = ("SMTPStatus",)

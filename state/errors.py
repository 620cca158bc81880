"""Errors of the window state store."""

from __future__ import annotations

from windows.errors import WinnowError


class StateError(WinnowError):
    """Window state could not be opened, read or written, or belongs to another job shape."""

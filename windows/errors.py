"""The root of Winnow's error hierarchy.

Every error Winnow raises on purpose is a ``WinnowError``; the subclasses say
what caused it, so a caller can tell bad configuration from bad input from a
broken store without parsing messages. Lower layers add their own subclasses
(``state.errors``, ``connectors.errors``) under the same root.
"""

from __future__ import annotations


class WinnowError(Exception):
    """Base class of every error Winnow raises on purpose."""


def reason(error: BaseException) -> str:
    """The text of an underlying error, to end one of Winnow's sentence-long messages: without a full stop
    of its own (libraries' messages sometimes end with one)."""
    return str(error).rstrip(".")


class SpecError(WinnowError):
    """A job spec, window definition or aggregation is invalid; nothing has run yet."""


class InputError(WinnowError):
    """An input event or file cannot be processed as given."""

"""Errors a user can act on.

Stage CLIs catch :class:`UserError` and print its message as one line (no
traceback), so every message must name the problem *and* the fix. The message is printed,
logged and shown on a service's health page, so a password in a URI it quotes (a registry's
``http://user:password@host``, a database's ``postgresql://...``) is hidden here, once.
"""

import re

# scheme://user:password@host -> scheme://user:***@host
_PASSWORD_IN_URI = re.compile(r"(://[^:/@\s]*):[^@/\s]*@")


def redact(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***``."""
    return _PASSWORD_IN_URI.sub(r"\1:***@", text)


class UserError(Exception):
    """A problem caused by input or configuration that the user can fix."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ChecksumError(UserError):
    """A file's SHA-256 does not match the expected value."""


class DataFormatError(UserError):
    """A data file is not what it claims to be (bad magic, shape, dtype, NaN...)."""

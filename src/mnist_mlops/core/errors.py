"""Errors a user can act on.

Stage CLIs catch :class:`UserError` and print its message as one line (no
traceback), so every message must name the problem *and* the fix.
"""


class UserError(Exception):
    """A problem caused by input or configuration that the user can fix."""


class ChecksumError(UserError):
    """A file's SHA-256 does not match the expected value."""


class DataFormatError(UserError):
    """A data file is not what it claims to be (bad magic, shape, dtype, NaN...)."""

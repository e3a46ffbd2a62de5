"""Exceptions that separate user mistakes from per-image failures."""

#: Set to 1 (or pass ``mfrbench --debug``) to see the full traceback of a user error.
DEBUG_ENV = "MFRBENCH_DEBUG"


class UserError(ValueError):
    """A mistake the user can fix (bad option, missing root, unknown colour).

    A ``ValueError``, so a library caller can catch bad input the usual way. The CLI prints its
    message as one line and exits with code 2; with ``MFRBENCH_DEBUG=1`` or ``mfrbench --debug``
    it prints the whole traceback, including the exception it was raised from (``raise
    UserError(...) from exc`` keeps a plugin's own error reachable that way).
    """


class ImageError(Exception):
    """A per-image failure that becomes a manifest row instead of stopping the run.

    `status` is a short machine-readable code (e.g. ``decode_error``); the message is the reason.
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

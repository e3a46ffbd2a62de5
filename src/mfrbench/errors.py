"""Exceptions that separate user mistakes from per-image failures."""


class UserError(Exception):
    """A mistake the user can fix (bad option, missing root, unknown colour).

    The CLI prints its message as one line and exits with code 2, never a traceback.
    """


class ImageError(Exception):
    """A per-image failure that becomes a manifest row instead of stopping the run.

    `status` is a short machine-readable code (e.g. ``decode_error``); the message is the reason.
    """

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

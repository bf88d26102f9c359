"""One exception type for every problem a user can fix (bad config, missing file, wrong checkpoint).

The CLI prints these as a single line (`video-ats: error: ...`) instead of a traceback. Library
callers can catch it as a ``ValueError``.
"""


class UserError(ValueError):
    """A problem with the user's input; the message says what was wrong and what to do."""

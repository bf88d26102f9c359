"""One exception type for every problem a user can fix (bad config, missing file, wrong checkpoint).

The CLI prints these as a single line (`video-ats: error: ...`) instead of a traceback. Library
callers can catch it as a ``ValueError``.
"""
from __future__ import annotations

import re
from typing import Optional


class UserError(ValueError):
    """A problem with the user's input; the message says what was wrong and what to do."""


_WORKER_RE = re.compile(r"^Caught (\w+) in DataLoader worker process \d+\.\s*\nOriginal Traceback", re.S)


def unwrap_worker_error(exc: BaseException) -> Optional[UserError]:
    """The :class:`UserError` a DataLoader worker raised, from torch's re-raised wrapper exception
    ("Caught UserError in DataLoader worker process 0. Original Traceback ...") — or None when
    ``exc`` is not such a wrapper of a UserError."""
    text = str(exc.args[0]) if getattr(exc, "args", None) and isinstance(exc.args[0], str) else str(exc)
    m = _WORKER_RE.match(text)
    if not m or m.group(1) != "UserError":
        return None
    for line in reversed(text.rstrip().splitlines()):
        found = re.match(r"^(?:[\w.]+\.)?UserError: (.*)$", line)
        if found:
            return UserError(found.group(1))
    return None

"""Error types shared by cdo_train and cdo_deploy.

``CdoError`` is raised for user mistakes (bad paths, bad options, unreadable
files). The CLIs turn it into a one-line ``Error: ...`` and exit status 1.
Any other exception is a bug and keeps its traceback. :func:`did_you_mean` is
the one close-match hint every "unknown name" message ends with.

Example:
    >>> from cdo_deploy.errors import CdoError
    >>> try:
    ...     raise CdoError("no such bundle: /tmp/x (run cdo-export first)")
    ... except CdoError as e:
    ...     print(e)
    no such bundle: /tmp/x (run cdo-export first)
    >>> did_you_mean("stpes", ["steps", "seed", "epochs"])
    ' (did you mean steps?)'
"""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["CdoError", "did_you_mean"]


class CdoError(Exception):
    """A user-facing error: what went wrong, where, and what to do next."""


def did_you_mean(word: str, names: Iterable[str], n: int = 3) -> str:
    """``" (did you mean a, b?)"`` naming up to ``n`` of ``names`` close to ``word``; ``""`` when none is."""
    close = difflib.get_close_matches(str(word), sorted(names), n=n)
    return f" (did you mean {', '.join(close)}?)" if close else ""

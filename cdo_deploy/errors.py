"""Error types shared by cdo_train and cdo_deploy.

``CdoError`` is raised for user mistakes (bad paths, bad options, unreadable
files). The CLIs turn it into a one-line ``Error: ...`` and exit status 1.
Any other exception is a bug and keeps its traceback.

Example:
    >>> from cdo_deploy.errors import CdoError
    >>> try:
    ...     raise CdoError("no such bundle: /tmp/x (run cdo-export first)")
    ... except CdoError as e:
    ...     print(e)
    no such bundle: /tmp/x (run cdo-export first)
"""

from __future__ import annotations

__all__ = ["CdoError"]


class CdoError(Exception):
    """A user-facing error: what went wrong, where, and what to do next."""

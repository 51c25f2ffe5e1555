"""The project's scripts (studies, benchmarks, suites), importable as ``tools.<name>`` from a checkout.

Each runs as ``python tools/<name>.py`` (or ``python -m tools.<name>``) from the checkout's root;
the tests import them as modules. A script that uses a sibling imports it as ``tools.<sibling>``
(and, when run as a file, first puts the checkout's root on ``sys.path``). Not installed with
the ``cdo`` package.
"""

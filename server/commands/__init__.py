"""Sub-commands of the ``paperfeed`` console script, one module each.

Every module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, settings) -> int``; :mod:`server.cli` finds them by listing this package.
"""

import importlib.util


def _available(name: str) -> bool:
    """Whether a sub-command module ``name`` exists (process types join as features land)."""
    return importlib.util.find_spec(f"{__name__}.{name}") is not None

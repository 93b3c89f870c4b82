"""The ``aura`` command's entry point; the command itself needs the ``cli`` extra.

The command lives in this package: ``commands`` (click) parses the arguments, ``batch`` runs a
JSONL batch through a fan-out, ``jsonl`` holds the batch file formats (pure, no I/O),
``progress`` draws the progress bar (rich) and ``demo`` runs the offline demo. Only this module
loads without click and rich, so that a missing extra gets one clear line, not a traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_EXTRA = ("click", "rich")


def main(argv: list[str] | None = None) -> int:
    """Run ``aura`` with ``argv`` (default: the process's arguments); return its exit code."""
    try:
        from .commands import main as run
    except ImportError as exc:
        if exc.name not in _EXTRA:
            raise
        print(  # noqa: T201 (no click to echo with)
            f"aura: error: the aura command needs the cli extra ({exc.name} is missing): "
            "pip install 'aura_anyio[cli]'",
            file=sys.stderr,
        )
        return 2
    return run(argv)

"""Closure cells, as both the packager (on the host) and the worker walk them.

A module of its own so that the packager does not import the worker loop (and its logging
and thread machinery) on a deploy.
"""

from __future__ import annotations

import types


def cell_is_filled(cell: types.CellType) -> bool:
    """True when a closure cell holds a value (a variable assigned after the closure was made
    may still be empty)."""
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


__all__ = ["cell_is_filled"]

"""What each persona should be able to do, as rules for `review.matrix.matrix_from_rule`."""

from __future__ import annotations

from review.matrix import Cell


def owner_access(cell: Cell) -> bool:
    """The owner profile: anon nothing, each user only their own rows, service_role everything."""
    if cell.persona == "anon":
        return False
    if cell.persona == "service_role":
        return True
    return cell.whose == "own"

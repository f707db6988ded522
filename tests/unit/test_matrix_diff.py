"""The access matrix without a database: the diff of two matrices and how a changed cell is shown
(against real databases: tests/db/test_matrix.py)."""

from __future__ import annotations

import pytest

from review.matrix import PERSONA_LABELS, Cell, diff, matrix_from_rule


@pytest.mark.unit
def test_diff_names_each_changed_cell_and_render_marks_it() -> None:
    before = matrix_from_rule(["generated_content"], lambda cell: True)
    after = matrix_from_rule(
        ["generated_content"],
        lambda cell: not (cell.persona == "authenticated (anonymous A)" and cell.operation == "insert"),
    )
    assert diff(before, after) == [
        "authenticated (anonymous A) · generated_content · insert own: allowed → denied",
        "authenticated (anonymous A) · generated_content · insert other: allowed → denied",
    ]
    assert diff(after, after) == []
    marked = {Cell("authenticated (anonymous A)", "generated_content", "insert", "own")}
    text = after.render_text(marked)
    assert "✗*" in text and "* changed" in text
    assert text.count("\n") > len(PERSONA_LABELS)
    assert "**✗ (changed)**" in after.render_markdown(marked)

"""A class with no test example has no recall: the table says n/a, not 0.000 (which reads as 'always missed')."""

from __future__ import annotations

import torch

from masklab.viz.confusion import format_confusion


def test_a_class_without_examples_has_no_recall():
    matrix = torch.tensor([[3, 1, 0], [0, 0, 0], [0, 2, 0]])
    lines = format_confusion(matrix, ["cat", "dog", "eel"]).splitlines()
    assert lines[1].endswith("   0.750")
    assert lines[2].split()[0] == "dog" and lines[2].endswith("     n/a")
    assert lines[3].endswith("   0.000")  # examples, none found: a real 0
    assert len({len(line) for line in lines[1:]}) == 1  # the column stays aligned

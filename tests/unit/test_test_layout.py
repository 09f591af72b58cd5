"""The test tree itself: pytest imports test modules by basename (rootdir-relative
"prepend" import mode), so two test files of one name in different directories make
the whole run stop at collection ("import file mismatch")."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def test_no_two_test_modules_share_a_basename() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if "__pycache__" not in path.parts:
            where[path.name].append(str(path.relative_to(TESTS)))
    shared = {name: paths for name, paths in where.items()
              if len(paths) > 1 and name != "__init__.py"}
    assert shared == {}

"""Import the unit test modules once in mutmut's fork server (scripts/mutation).

mutmut forks one child per mutant from a server that has imported what the
preload list names (scripts/mutation-preload.txt, which names this module).
Each child runs pytest afresh, since pytest-twisted cannot restart a reactor;
importing the test modules here saves every child that work (about a second
for a mutant that a hundred tests reach). pytest imports a test module as its
bare name with its directory on ``sys.path`` ("prepend" mode), so a module
imported here under that name from that file is the one pytest uses. This
module runs only as a copy inside mutants/, next to the mutated package.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from hypothesis import settings

TESTS = Path(__file__).resolve().parent
UNIT = TESTS / "unit"


def _import_test_modules() -> None:
    sys.path[:0] = [str(UNIT), str(TESTS)]
    for name in ["conftest", *(p.stem for p in sorted(UNIT.glob("test_*.py")))]:
        try:
            importlib.import_module(name)
        except Exception:  # pytest imports it again and reports the error
            continue
        if "twisted.internet.reactor" in sys.modules:
            # pytest-twisted installs its reactor in each child; one installed here
            # would make every child fail at start-up.
            raise RuntimeError(f"importing {name} installed a Twisted reactor")


# Every child draws the same examples (a seed per test, so a mutant's fate is not
# luck, and no database of examples found failing for another mutant), and no
# deadline: every call of a mutated
# function goes through mutmut's trampoline, on a machine others share, and a slow
# example is not a test that caught the mutant.
settings.register_profile("mutation", derandomize=True, deadline=None, database=None)
settings.load_profile("mutation")
# tests/conftest.py loads the suite's profile unless told otherwise (the children inherit it).
os.environ["ETCDWAMP_HYPOTHESIS_PROFILE"] = "mutation"
_import_test_modules()

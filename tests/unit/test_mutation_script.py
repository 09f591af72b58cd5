"""scripts/mutation's own logic: which mutants a module has, the table, where a mutant is."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run_mutation.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_mutation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_mutation"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_core_is_what_the_issue_names(script: ModuleType) -> None:
    core = script.core_modules()
    assert {"etcdwamp/wire/errors.py", "etcdwamp/wire/results.py", "etcdwamp/wamp/access.py",
            "etcdwamp/wamp/settings.py", "etcdwamp/pmap/codecs.py"} <= set(core)
    assert "etcdwamp/client.py" not in core


def test_a_module_pattern_matches_its_mutants_and_no_other_modules(script: ModuleType) -> None:
    assert script.mutant_glob("etcdwamp/wire/errors.py") == "etcdwamp.wire.errors.*"
    # A package's own functions are named without "__init__" by mutmut.
    assert script.mutant_glob("etcdwamp/wire/__init__.py") == "etcdwamp.wire.x*"


def test_detected_counts_killed_and_timed_out_mutants_of_all(script: ModuleType) -> None:
    result = script.ModuleResult("etcdwamp/wire/x.py", {
        "a__mutmut_1": 1, "a__mutmut_2": 1, "a__mutmut_3": 36,  # killed, killed, timeout
        "a__mutmut_4": 0, "a__mutmut_5": 33, "a__mutmut_6": None,  # survived, no tests, new
    })
    header, row = script.table([result]).splitlines()
    assert header.split() == ["module", "mutants", "killed", "survived", "no", "tests",
                              "timeout", "other", "detected"]
    assert row.split() == ["etcdwamp/wire/x.py", "6", "2", "1", "1", "1", "1", "50%"]


def test_a_mutant_is_placed_on_the_source_line_it_changes(script: ModuleType) -> None:
    source = (script.ROOT / "etcdwamp/wire/errors.py").read_text().splitlines()
    line = next(i for i, text in enumerate(source, 1) if text.strip() == 'message = ""')
    start = next(i for i, text in enumerate(source, 1)
                 if text.startswith("def error_from_response("))
    offset = line - start
    diff = "\n".join([
        "--- etcdwamp/wire/errors.py", "+++ etcdwamp/wire/errors.py",
        f"@@ -{offset},3 +{offset},3 @@",
        " " + source[line - 2], "-" + source[line - 1], '+    message = "XXXX"', " " + source[line],
    ])
    found = script.source_line("etcdwamp/wire/errors.py",
                               "etcdwamp.wire.errors.x_error_from_response__mutmut_3", diff)
    assert found == line


def test_the_rst_table_is_a_simple_table_with_a_total_row(script: ModuleType) -> None:
    results = [script.ModuleResult("etcdwamp/wire/a.py", {"f__mutmut_1": 1}),
               script.ModuleResult("etcdwamp/wire/b.py", {"f__mutmut_1": 0})]
    lines = script.table(results, rst=True).splitlines()
    rule = lines[0]
    assert set(rule) == {"=", " "} and lines[2] == rule and lines[-1] == rule
    assert lines[3].split()[0] == "``etcdwamp/wire/a.py``"
    assert lines[5].split() == ["**total**", "2", "1", "1", "0", "0", "0", "50%"]


def test_a_module_not_run_yet_has_no_share_and_is_not_in_the_total(script: ModuleType) -> None:
    waiting = script.ModuleResult("etcdwamp/wire/x.py", {"f__mutmut_1": None, "f__mutmut_2": None})
    run = script.ModuleResult("etcdwamp/wire/y.py", {"f__mutmut_1": 1, "f__mutmut_2": 0})
    _, row, _, total = script.table([waiting, run]).splitlines()
    assert row.split() == ["etcdwamp/wire/x.py", "2", "0", "0", "0", "0", "2", "not", "run"]
    assert total.split() == ["total", "2", "1", "1", "0", "0", "0", "50%"]

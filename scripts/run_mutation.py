"""Mutation testing of the core modules with mutmut; prints the detected share per module.

    scripts/mutation [--jobs N] [--again] [--survivors DIR] [--report-only] [--rst] [MODULE ...]

The core is what ``only_mutate`` in ``[tool.mutmut]`` (pyproject.toml) names; the unit tests
are the test set. Without MODULE every core module is run, and a mutant that has a result
from an earlier run keeps it (mutmut re-runs the mutants of functions whose source changed;
``--again`` re-runs them all, e.g. after the tests changed). With MODULE
(``etcdwamp/wire/errors.py``) only that module's mutants run, all of them again. mutmut's
work dir is ``mutants/`` (not in git); ``mutmut show NAME`` there shows one mutant.

Detected means killed (a test failed) or timed out (the mutant made a test hang). The run
takes about one mutant per second per job after a two-minute start (the unit tests once,
to learn which tests reach which function).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants"
# Exit codes mutmut records per mutant (mutmut.stats.status_by_exit_code, 3.8.1).
KILLED = {1, 3}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, -24, 24, 152, 255}


@dataclass(frozen=True)
class ModuleResult:
    """What mutmut recorded for the mutants of one source file."""

    path: str
    exit_codes: dict[str, int | None]

    def count(self, codes: set[int]) -> int:
        return sum(1 for code in self.exit_codes.values() if code in codes)

    @property
    def other(self) -> int:
        """Mutants not checked (yet), suspicious, segfaulted or caught by a type check."""
        known = KILLED | SURVIVED | NO_TESTS | TIMEOUT
        return sum(1 for code in self.exit_codes.values() if code not in known)

    @property
    def detected(self) -> int:
        return self.count(KILLED) + self.count(TIMEOUT)


def core_modules() -> list[str]:
    """The source files ``only_mutate`` selects, as paths relative to the project root."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["mutmut"]["only_mutate"]
    files = (p.relative_to(ROOT).as_posix() for p in (ROOT / "etcdwamp").rglob("*.py"))
    return sorted(f for f in files if any(fnmatch.fnmatch(f, pat) for pat in patterns))


def mutant_glob(module: str) -> str:
    """mutmut's name pattern for one module's mutants (``etcdwamp.wire.errors.*``).

    A package's ``__init__`` has no name part of its own, and its functions are mangled
    to ``x_...``/``xǁClassǁ...``, so ``etcdwamp.wire.x*`` matches them and no submodule."""
    dotted = module.removesuffix(".py").replace("/", ".")
    if dotted.endswith(".__init__"):
        return dotted.removesuffix(".__init__") + ".x*"
    return dotted + ".*"


def load_result(module: str) -> ModuleResult | None:
    """The module's results from mutants/, or None before its mutants were generated."""
    meta = WORK / (module + ".meta")
    if not meta.exists():
        return None
    with open(meta) as f:
        return ModuleResult(module, json.load(f)["exit_code_by_key"])


def run_mutmut(jobs: int, names: list[str]) -> int:
    """Run ``mutmut run``; its progress goes to a terminal as is, else to mutants/run.log."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names]
    if sys.stdout.isatty():
        return subprocess.run(command, cwd=ROOT, check=False).returncode
    WORK.mkdir(exist_ok=True)
    log = WORK / "run.log"
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
    if code != 0:
        # The spinner writes carriage returns; the end of the log says what failed.
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-30:]
        print("\n".join(tail), file=sys.stderr)
    return code


def table(results: list[ModuleResult], *, rst: bool = False) -> str:
    """The per-module table (module, mutants, killed, ..., detected %), with a total row of
    the modules run; as a reStructuredText simple table for docs/mutation.rst if ``rst``."""
    header = ("module", "mutants", "killed", "survived", "no tests", "timeout", "other",
              "detected")
    rows: list[tuple[str, ...]] = []
    totals = Counter[str]()
    for r in results:
        n = len(r.exit_codes)
        numbers = {"mutants": n, "killed": r.count(KILLED), "survived": r.count(SURVIVED),
                   "no tests": r.count(NO_TESTS), "timeout": r.count(TIMEOUT),
                   "other": r.other, "detected": r.detected}
        unchecked = sum(1 for code in r.exit_codes.values() if code is None)
        # A module not run yet has no share (0% would read as "nothing detected").
        share = "not run" if unchecked == n else percent(r.detected, n)
        if unchecked < n:
            totals.update(numbers)
        rows.append((r.path, *(str(numbers[h]) for h in header[1:-1]), share))
    if len(results) > 1:
        rows.append(("total", *(str(totals[h]) for h in header[1:-1]),
                     percent(totals["detected"], totals["mutants"])))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    if not rst:
        return "\n".join([line(header), *(line(row) for row in rows)])
    rows = [(f"``{row[0]}``" if row[0] != "total" else "**total**", *row[1:]) for row in rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    return "\n".join([rule, line(header), rule, *(line(row) for row in rows), rule])


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def source_line(module: str, mutant: str, diff: str) -> int | None:
    """The line of ``module`` the mutant changes, found from its diff (which numbers the
    lines of the function alone) and the function's place in the source."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    name, class_name = orig_function_and_class_names_from_key(mutant)
    tree = ast.parse((ROOT / module).read_text())
    body: list[ast.stmt] = tree.body
    if class_name is not None:
        classes = [n for n in body if isinstance(n, ast.ClassDef) and n.name == class_name]
        body = classes[0].body if classes else []
    functions = [n for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
                 and n.name == name]
    if not functions:
        return None
    function = functions[-1]
    end = function.end_lineno or function.lineno
    lines = (ROOT / module).read_text().splitlines()
    # The first removed line (or, for a pure insertion, the line before it) is the change.
    offset, changed = 0, None
    for diff_line in diff.splitlines():
        if diff_line.startswith("@@"):
            offset = int(diff_line.split()[1].split(",")[0].lstrip("-")) - 1
        elif diff_line.startswith(("---", "+++")):
            continue
        elif diff_line.startswith("-"):
            changed = diff_line[1:].strip()
            break
        elif diff_line.startswith(" "):
            offset += 1
    candidates = [i for i in range(function.lineno, end + 1)
                  if changed is not None and lines[i - 1].strip() == changed]
    if not candidates:
        return function.lineno
    # libcst's copy of the function starts at its decorators or comments; pick the match
    # nearest to where the diff puts the line.
    start = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    return min(candidates, key=lambda i: abs(i - (start + offset)))


def write_survivors(result: ModuleResult, directory: Path) -> Path:
    """Write one block per surviving (or untested) mutant: name, file:line, the diff."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    blocks = []
    for mutant, code in sorted(result.exit_codes.items(), key=lambda kv: mutant_order(kv[0])):
        if code not in SURVIVED | NO_TESTS:
            continue
        diff = get_diff_for_mutant(mutant, path=result.path)
        line = source_line(result.path, mutant, diff)
        status = "survived" if code in SURVIVED else "no tests"
        blocks.append(f"{mutant}  ({status})\n{result.path}:{line}\n{diff}\n")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / (result.path.replace("/", "_") + ".txt")
    header = (f"# {result.path}: {len(blocks)} undetected of {len(result.exit_codes)} mutants"
              f" ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n")
    target.write_text(header + "\n".join(blocks))
    return target


def mutant_order(mutant: str) -> tuple[str, int]:
    function, _, number = mutant.rpartition("__mutmut_")
    return function, int(number) if number.isdigit() else 0


def main() -> int:
    modules = core_modules()
    parser = argparse.ArgumentParser(
        prog="scripts/mutation",
        description="Mutation-test the core modules and print the detected share per module.")
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"a core module to run (all again); default: all. One of: "
                             f"{', '.join(modules)}")
    parser.add_argument("--jobs", type=int, default=1,
                        help="mutants tested at once (default 1)")
    parser.add_argument("--again", action="store_true",
                        help="re-run mutants that have a result already")
    parser.add_argument("--survivors", type=Path, metavar="DIR",
                        help="write each module's undetected mutants to DIR/<module>.txt")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table of the last run; run nothing")
    parser.add_argument("--rst", action="store_true",
                        help="print the table as reStructuredText (for docs/mutation.rst)")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    unknown = [m for m in args.modules if m not in modules]
    if unknown:
        parser.error(f"not a core module (only_mutate in pyproject.toml): {', '.join(unknown)}")
    selected = args.modules or modules
    os.chdir(ROOT)  # mutmut reads pyproject.toml and mutants/ from the working directory

    started = time.monotonic()
    if not args.report_only:
        names: list[str] = []
        if args.modules or args.again:
            for module in selected:
                known = load_result(module)
                # mutmut refuses a pattern that matches no mutant (a file of constants).
                if known is None or known.exit_codes:
                    names.append(mutant_glob(module))
        if (args.modules or args.again) and not names:
            print("no mutants in", ", ".join(selected))
        else:
            code = run_mutmut(args.jobs, names)
            if code != 0:
                print(f"mutmut failed (exit {code})", file=sys.stderr)
                return code
    # A module without functions (wire/__init__.py) has no mutants and no row.
    results = [r for r in map(load_result, selected) if r is not None and r.exit_codes]
    print(table(results, rst=args.rst))
    if not args.report_only:
        print(f"time: {time.monotonic() - started:.0f} s with --jobs {args.jobs}")
    if args.survivors is not None:
        for result in results:
            print("wrote", write_survivors(result, args.survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dependencies run one way: the client depends on its namespace view and its operations,
the transport on its stream probes, never the other way round (no import circle such as
client → operations → namespace → client or probe ↔ transport, not even for type checking)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "etcdwamp"


def imported_modules(path: Path) -> set[str]:
    """The etcdwamp modules ``path`` imports anywhere in it (inside functions and
    ``if TYPE_CHECKING:`` blocks too), as names relative to the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.module and node.module.startswith("etcdwamp."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names
                      if alias.name.startswith("etcdwamp.")}
    return found


@pytest.mark.parametrize("module", ["namespace", "operations"])
def test_module_does_not_import_the_client(module: str) -> None:
    """``etcdwamp/<module>.py`` imports neither etcdwamp.client nor a module that does."""
    imports = imported_modules(PACKAGE / f"{module}.py")
    assert "client" not in imports
    assert "namespace" not in imports or module == "namespace"


def test_client_imports_namespace_and_operations() -> None:
    """The one direction: the client builds on both (so the test above is not vacuous)."""
    assert {"namespace", "operations"} <= imported_modules(PACKAGE / "client.py")


def test_probe_does_not_import_the_transport() -> None:
    """The probes reach the transport through their ``ProbeTarget`` protocol;
    the transport builds on them."""
    assert "transport" not in imported_modules(PACKAGE / "probe.py")
    assert "probe" in imported_modules(PACKAGE / "transport.py")


def test_no_import_circle_among_the_top_level_modules() -> None:
    """No ``etcdwamp/*.py`` module reaches itself through the imports of the
    others (subpackages count as leaves here)."""
    graph = {path.stem: imported_modules(path) - {path.stem}
             for path in PACKAGE.glob("*.py")}
    assert {"client", "transport", "probe"} <= graph.keys()  # the walk sees the package

    def circle_from(start: str) -> list[str] | None:
        paths = [[start]]
        seen: set[str] = set()
        while paths:
            path = paths.pop()
            for step in sorted(graph.get(path[-1], ())):
                if step == start:
                    return [*path, start]
                if step not in seen:
                    seen.add(step)
                    paths.append([*path, step])
        return None

    circles = [c for c in map(circle_from, sorted(graph)) if c is not None]
    assert not circles, " ; ".join(" → ".join(c) for c in circles)

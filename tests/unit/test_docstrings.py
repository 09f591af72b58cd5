"""Every public callable of the ``etcdwamp`` package has a docstring (issue 12, Documentation).

Public means: in a module whose dotted name has no part starting with ``_``; a module-level
function or class whose name does not start with ``_`` (and, when the module defines
``__all__``, is listed there); and, on such a class, a method, classmethod, staticmethod or
property defined in that class's own body whose name does not start with ``_``. Methods a class
inherits (from Twisted, Autobahn, the standard library or a base class of ours) are checked where
they are defined, not again on every subclass; dunder methods, including those ``dataclass``
generates, are not public.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from dataclasses import is_dataclass
from types import FunctionType, ModuleType
from typing import Any

import etcdwamp


def _public_modules() -> Iterator[ModuleType]:
    yield etcdwamp
    for info in pkgutil.walk_packages(etcdwamp.__path__, prefix="etcdwamp."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def _public_names(module: ModuleType) -> list[str]:
    exported = getattr(module, "__all__", None)
    if exported is not None:
        return list(exported)
    return [name for name in vars(module) if not name.startswith("_")]


def _own_doc(obj: Any) -> str | None:
    """The docstring written for ``obj`` itself, ignoring ones it would inherit or was given."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not isinstance(doc, str) or not doc.strip():
        return None
    if inspect.isclass(obj) and is_dataclass(obj):
        # dataclass() fills a missing docstring with the class's signature.
        generated = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
        if doc == generated:
            return None
    return doc


def _method_doc(member: Any) -> str | None:
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        member = member.fget
    return _own_doc(member) if member is not None else None


def _is_method(member: Any) -> bool:
    return isinstance(member, (FunctionType, staticmethod, classmethod, property))


def undocumented() -> list[str]:
    """``module.qualname`` of every public callable of the package without a docstring."""
    missing: set[str] = set()
    seen: set[int] = set()
    for module in _public_modules():
        for name in _public_names(module):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            home = getattr(obj, "__module__", "") or ""
            # Re-exports are checked once, under the module that defines them; a name only
            # imported from outside the package is not ours to document.
            if home != "etcdwamp" and not home.startswith("etcdwamp."):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            where = f"{home}.{obj.__qualname__}"
            if _own_doc(obj) is None:
                missing.add(where)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") or not _is_method(member):
                        continue
                    if _method_doc(member) is None:
                        missing.add(f"{where}.{attr}")
    return sorted(missing)


def test_every_public_callable_has_a_docstring() -> None:
    """No public function, class, method or property of etcdwamp lacks a docstring."""
    missing = undocumented()
    assert not missing, "public callables without a docstring:\n  " + "\n  ".join(missing)


def test_generated_and_inherited_docstrings_do_not_count() -> None:
    """A dataclass's generated signature docstring and a base class's docstring are not docs."""
    from dataclasses import dataclass

    @dataclass
    class Plain:
        x: int

    class Base:
        """Documented."""

    class Child(Base):
        pass

    def bare() -> None:
        pass

    assert Plain.__doc__  # dataclass() did fill it in
    assert _own_doc(Plain) is None
    assert _own_doc(Child) is None
    assert _own_doc(Base) == "Documented."
    assert _method_doc(property(bare)) is None
    assert _method_doc(staticmethod(bare)) is None

"""etcd's API as protobuf modules, generated on first import when missing or stale.

Importing this module finds modules generated from the vendored ``.proto`` files whose
stamp matches them (in the package's ``_pb`` directory, else in the user's cache), or
generates them (needs ``etcdwamp[grpc]``: protoc from grpcio-tools): into the package
directory if it is writable, else into ``$XDG_CACHE_HOME/etcdwamp/grpc-pb/<digest>``.
Raises ``ImportError`` naming the extra when neither is possible.

The generated classes carry no annotations mypy can use at this boundary: they are
``Any`` here, and the codec converts them to the wire layer's typed results.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

try:
    import google.protobuf  # noqa: F401  (the generated modules need it)
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "etcdwamp.grpc needs protobuf: pip install 'etcdwamp[grpc]'"
    ) from exc

from .generate import (
    MODULE_PACKAGE,
    STAMP_FILE,
    GenerateError,
    generate,
    protoc_version,
    source_digest,
)

__all__ = [
    "ROUTES",
    "auth_pb2",
    "cache_root",
    "ensure_modules",
    "kv_pb2",
    "rpc_pb2",
    "v3election_pb2",
    "v3lock_pb2",
]

PACKAGE_DIR = Path(__file__).resolve().parent / "_pb"


def cache_root() -> Path:
    """Where modules go when the package directory is read-only (XDG base directories)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "etcdwamp" / "grpc-pb"


def _fresh(directory: Path, digest: str, protoc: str | None) -> bool:
    """Modules in ``directory`` were generated from ``digest`` (and by ``protoc``, when
    it is installed: without it any protoc's modules of these files will do)."""
    try:
        lines = (directory / STAMP_FILE).read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    stamp = dict(line.split(" ", 1) for line in lines if " " in line)
    return stamp.get("protos") == digest and (protoc is None or stamp.get("protoc") == protoc)


def ensure_modules(package_dir: Path = PACKAGE_DIR, cache: Path | None = None) -> Path:
    """The directory holding fresh modules: ``package_dir`` or ``cache/<digest>``, generated
    there first if need be (``package_dir`` is tried before the cache).

    :raises ImportError: no fresh modules and protoc is missing, or neither place is writable
    """
    digest = source_digest()
    protoc = protoc_version()
    cached = (cache_root() if cache is None else cache) / digest[:16]
    for directory in (package_dir, cached):
        if _fresh(directory, digest, protoc):
            return directory
    if protoc is None:
        raise ImportError("etcdwamp.grpc needs etcd's protobuf modules, which protoc "
                          "generates: pip install 'etcdwamp[grpc]' (grpcio-tools)")
    failures = []
    for directory in (package_dir, cached):
        try:
            generate(directory)
        except OSError as exc:
            failures.append(f"{directory}: {exc.strerror or exc}")
            continue
        except GenerateError as exc:
            raise ImportError(f"generating etcd's protobuf modules failed: {exc}") from exc
        return directory
    raise ImportError("cannot write etcd's protobuf modules: " + "; ".join(failures))


def _import_package(directory: Path) -> ModuleType:
    """Import :data:`MODULE_PACKAGE` from ``directory`` (the package's own or the cache)."""
    if directory == PACKAGE_DIR:
        return importlib.import_module(MODULE_PACKAGE)
    spec = importlib.util.spec_from_file_location(
        MODULE_PACKAGE, directory / "__init__.py", submodule_search_locations=[str(directory)])
    if spec is None or spec.loader is None:  # pragma: no cover - a file path always has one
        raise ImportError(f"cannot import {MODULE_PACKAGE} from {directory}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_PACKAGE] = package
    spec.loader.exec_module(package)
    return package


def _load() -> tuple[Any, Any, Any, Any, Any, dict[str, tuple[Any, ...]]]:
    if MODULE_PACKAGE not in sys.modules:
        _import_package(ensure_modules())

    def sub(name: str) -> Any:
        return importlib.import_module(f"{MODULE_PACKAGE}.{name}")

    routes: dict[str, tuple[Any, ...]] = sub("routes").ROUTES
    return (sub("kv_pb2"), sub("auth_pb2"), sub("rpc_pb2"), sub("v3election_pb2"),
            sub("v3lock_pb2"), routes)


kv_pb2, auth_pb2, rpc_pb2, v3election_pb2, v3lock_pb2, ROUTES = _load()

"""Generate the protobuf modules of etcd's API from the vendored ``.proto`` files.

``python -m etcdwamp.grpc.generate [DIR]`` writes them into ``DIR`` (default: the
package directory ``etcdwamp/grpc/_pb``). Needs protoc from ``grpcio-tools``.

The vendored files stay as etcd publishes them (``proto/NOTICE.rst``); here a copy of
each is prepared for protoc:

- the options only etcd's Go build understands are stripped (gogoproto, the gateway's
  ``google.api.http`` annotations, versionpb, openapiv2) with the imports that define
  them, whose ``.proto`` files we do not have;
- the proto packages get the prefix ``etcdwamp.`` (``etcdwamp.etcdserverpb``) and the
  files are placed at ``etcdwamp/grpc/_pb/<name>.proto``: other etcd clients (aetcd,
  python-etcd3) register ``etcdserverpb.RangeRequest`` and ``rpc.proto`` in protobuf's
  default pool too, and a second registration of a name fails. Message names never
  appear on the wire; the gRPC method names are kept (:data:`routes` below).

The gateway's paths are read from the ``google.api.http`` annotations before they are
stripped, and written beside the modules (``routes.py``): they tie each request of
the wire layer (a path relative to ``/v3``) to its gRPC method.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MODULE_PACKAGE",
    "PROTO_DIR",
    "PROTO_FILES",
    "STAMP_FILE",
    "GenerateError",
    "Route",
    "generate",
    "http_routes",
    "prepare",
    "protoc_version",
    "source_digest",
    "stamp_text",
    "strip_comments",
    "strip_options",
]

#: the vendored files, relative to :data:`PROTO_DIR` (the paths their imports name)
PROTO_FILES = (
    "etcd/api/mvccpb/kv.proto",
    "etcd/api/authpb/auth.proto",
    "etcd/api/etcdserverpb/rpc.proto",
    "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
    "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
)

PROTO_DIR = Path(__file__).resolve().parent / "proto"

#: the Python package the generated modules belong to
MODULE_PACKAGE = "etcdwamp.grpc._pb"

#: the proto package prefix that keeps our descriptors apart from other clients'
PACKAGE_PREFIX = "etcdwamp."

#: the name of the file recording what the modules were generated from
STAMP_FILE = "STAMP"

# Imports of files that only define options: dropped with the options.
_OPTION_IMPORTS = (
    "gogoproto/gogo.proto",
    "google/api/annotations.proto",
    "etcd/api/versionpb/version.proto",
    "protoc-gen-openapiv2/options/annotations.proto",
)

# Bump when the transformation below changes what it writes: the modules are regenerated.
_TRANSFORM_VERSION = "1"


class GenerateError(Exception):
    """protoc is missing or refused the prepared files; the message says which."""


@dataclass(frozen=True, slots=True)
class Route:
    """One RPC of etcd's API and the gateway path bound to it (``/kv/range``)."""

    #: gRPC method path as etcd serves it: ``/etcdserverpb.KV/Range``
    method: str
    #: message names within their proto package: ``RangeRequest``, ``RangeResponse``
    request_type: str
    response_type: str
    #: the generated module defining both messages (``rpc_pb2``)
    module: str
    client_streaming: bool
    server_streaming: bool


def _string_end(text: str, start: int) -> int:
    """Index after the string literal opening at ``text[start]``."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise GenerateError("unterminated string literal in a .proto file")


def strip_comments(text: str) -> str:
    """``text`` without its ``//`` and ``/* */`` comments (string literals kept intact)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                raise GenerateError("unterminated comment in a .proto file")
            i = close + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _value_end(text: str, start: int) -> int:
    """Index after the option value starting at ``text[start]``: up to the ``;`` that ends
    the statement, past any ``{...}`` aggregate and string literal."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i = _string_end(text, i)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    raise GenerateError("option statement without its ';'")


_CUSTOM_OPTION = re.compile(r"\boption\s*\(")
_OPTIONS_LIST = re.compile(r"\[")
_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;[ \t]*\n?', re.M)
_PACKAGE = re.compile(r"^(\s*package\s+)([\w.]+)(\s*;)", re.M)


def _split_top_level(text: str) -> list[str]:
    """The comma-separated entries of a field's options list (commas in strings and
    aggregates do not split)."""
    parts: list[str] = []
    depth, start, i = 0, 0, 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            i = _string_end(text, i)
            continue
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _strip_option_statements(text: str) -> str:
    out: list[str] = []
    pos = 0
    for match in _CUSTOM_OPTION.finditer(text):
        if match.start() < pos:
            continue  # inside a statement removed already
        out.append(text[pos:match.start()])
        pos = _value_end(text, match.end())
    out.append(text[pos:])
    return "".join(out)


def _strip_field_options(text: str) -> str:
    """Drop the custom (parenthesised) entries of every ``[...]`` field/enum-value options
    list; a list left empty goes with its brackets."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
            continue
        if c != "[":
            out.append(c)
            i += 1
            continue
        depth, j = 0, i
        while j < len(text):
            if text[j] in "\"'":
                j = _string_end(text, j)
                continue
            if text[j] == "[":
                depth += 1
            elif text[j] == "]":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        else:
            raise GenerateError("unbalanced '[' in a .proto file")
        kept = [p for p in _split_top_level(text[i + 1:j]) if not p.startswith("(")]
        if kept:
            out.append("[" + ", ".join(kept) + "]")
        elif out and out[-1] == " ":
            out.pop()  # "int64 x = 1 [(o) = 1];" -> "int64 x = 1;"
        i = j + 1
    return "".join(out)


def strip_options(text: str) -> str:
    """A ``.proto`` text without comments, custom options (``option (x) = ...;`` statements
    and ``[(x) = ...]`` entries) and the imports of option-only files.

    Standard options (``option go_package``, ``[packed = true]``) are kept. Raises
    :class:`GenerateError` for text it cannot scan (an unterminated string or statement).
    """
    text = strip_comments(text)
    text = _IMPORT.sub(lambda m: "" if m.group(1) in _OPTION_IMPORTS else m.group(0), text)
    text = _strip_option_statements(text)
    return _strip_field_options(text)


def _module_stem(proto_path: str) -> str:
    return Path(proto_path).stem


def prepare(text: str) -> str:
    """The copy protoc compiles: :func:`strip_options`, then the package prefixed and the
    imports of vendored files pointed at their prepared copies.

    Raises :class:`GenerateError` for an import of a file we do not vendor.
    """
    text = strip_options(text)
    text = _PACKAGE.sub(lambda m: f"{m.group(1)}{PACKAGE_PREFIX}{m.group(2)}{m.group(3)}",
                        text, count=1)
    out_dir = MODULE_PACKAGE.replace(".", "/")

    def point(match: re.Match[str]) -> str:
        path = match.group(1)
        if path not in PROTO_FILES:
            raise GenerateError(f"{path} is imported but not vendored")
        return f'import "{out_dir}/{_module_stem(path)}.proto";\n'

    return _IMPORT.sub(point, text)


_SERVICE = re.compile(r"\bservice\s+(\w+)\s*\{")
_RPC = re.compile(r"\brpc\s+(\w+)\s*\(\s*(stream\s+)?([\w.]+)\s*\)\s*"
                  r"returns\s*\(\s*(stream\s+)?([\w.]+)\s*\)")
_HTTP_BINDING = re.compile(r'\b(?:get|put|post|delete|patch)\s*:\s*"([^"]+)"')
_PACKAGE_NAME = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.M)


def http_routes(text: str, module: str) -> dict[str, Route]:
    """The gateway paths of a ``.proto`` text's RPCs (relative to ``/v3``), from their
    ``google.api.http`` annotations, each with its gRPC method; ``module`` names the
    generated module (``rpc_pb2``).

    A path bound twice (etcd 3.4's ``/v3/maintenance/hash`` was) keeps its first RPC.
    """
    text = strip_comments(text)
    package = _PACKAGE_NAME.search(text)
    if package is None:
        raise GenerateError("a .proto file without a package")
    services = [(m.start(), m.group(1)) for m in _SERVICE.finditer(text)]
    rpcs = list(_RPC.finditer(text))
    routes: dict[str, Route] = {}
    for index, rpc in enumerate(rpcs):
        service = [name for start, name in services if start < rpc.start()][-1]
        end = rpcs[index + 1].start() if index + 1 < len(rpcs) else len(text)
        later = [start for start, _ in services if rpc.end() < start < end]
        body = text[rpc.end():later[0] if later else end]
        for path in _HTTP_BINDING.findall(body):
            if not path.startswith("/v3/"):
                raise GenerateError(f"gateway path {path!r} is not under /v3")
            routes.setdefault(path[len("/v3"):], Route(
                method=f"/{package.group(1)}.{service}/{rpc.group(1)}",
                request_type=rpc.group(3).rsplit(".", 1)[-1],
                response_type=rpc.group(5).rsplit(".", 1)[-1],
                module=module,
                client_streaming=bool(rpc.group(2)),
                server_streaming=bool(rpc.group(4)),
            ))
    return routes


def protoc_version() -> str | None:
    """The installed ``grpcio-tools`` version (it fixes protoc's), or None without it."""
    try:
        return importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        return None


def source_digest(proto_dir: Path = PROTO_DIR) -> str:
    """SHA-256 of the vendored files and of this transformation's version."""
    digest = hashlib.sha256(_TRANSFORM_VERSION.encode())
    for name in PROTO_FILES:
        digest.update(name.encode() + b"\0")
        digest.update((proto_dir / name).read_bytes())
    return digest.hexdigest()


def stamp_text(digest: str, protoc: str) -> str:
    """The content of :data:`STAMP_FILE` for modules from ``digest`` by protoc ``protoc``."""
    return f"protos {digest}\nprotoc {protoc}\n"


def _routes_module(routes: dict[str, Route]) -> str:
    lines = [
        '"""Gateway paths (relative to /v3) of etcd\'s RPCs; generated, do not edit."""',
        "",
        "# path: (method, request type, response type, module, client streaming,",
        "#        server streaming)",
        "ROUTES = {",
    ]
    for path in sorted(routes):
        r = routes[path]
        lines.append(f"    {path!r}: ({r.method!r}, {r.request_type!r}, {r.response_type!r}, "
                     f"{r.module!r}, {r.client_streaming!r}, {r.server_streaming!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> None:
    """Write the modules (``*_pb2.py`` with ``.pyi`` stubs), ``routes.py``, ``__init__.py``
    and the stamp into ``out_dir`` (created if missing).

    Each file is replaced whole and the stamp is written last, so a reader that finds
    the new stamp finds the new modules. Raises :class:`GenerateError` without
    grpcio-tools or when protoc fails; ``OSError`` when ``out_dir`` is not writable.
    """
    protoc = protoc_version()
    if protoc is None:
        raise GenerateError("protoc is missing: install etcdwamp[grpc] (grpcio-tools)")
    digest = source_digest(proto_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="etcdwamp-pb-") as tmp:
        src = Path(tmp, "src")
        dst = Path(tmp, "out")
        package_dir = src / MODULE_PACKAGE.replace(".", "/")
        package_dir.mkdir(parents=True)
        dst.mkdir()
        routes: dict[str, Route] = {}
        names = []
        for name in PROTO_FILES:
            text = (proto_dir / name).read_text(encoding="utf-8")
            stem = _module_stem(name)
            for path, route in http_routes(text, f"{stem}_pb2").items():
                routes.setdefault(path, route)
            (package_dir / f"{stem}.proto").write_text(prepare(text), encoding="utf-8")
            names.append(f"{MODULE_PACKAGE.replace('.', '/')}/{stem}.proto")
        result = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{src}", f"--python_out={dst}",
             f"--pyi_out={dst}", *names],
            capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise GenerateError(f"protoc failed: {result.stderr.strip()[:2000]}")
        generated = dst / MODULE_PACKAGE.replace(".", "/")
        files = {p.name: p.read_bytes() for p in sorted(generated.iterdir())}
    files["__init__.py"] = (b'"""etcd\'s API as protobuf modules, generated by '
                            b'etcdwamp.grpc.generate; do not edit."""\n')
    files["routes.py"] = _routes_module(routes).encode()
    for name, data in files.items():
        _replace(out_dir / name, data)
    _replace(out_dir / STAMP_FILE, stamp_text(digest, protoc).encode())


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a concurrent reader sees the old or the new)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    """Command line: generate into the directory given, or the package's ``_pb``."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parent / "_pb"
    try:
        generate(out)
    except GenerateError as exc:
        print(f"etcdwamp.grpc.generate: {exc}", file=sys.stderr)
        return 1
    print(f"etcdwamp.grpc.generate: wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

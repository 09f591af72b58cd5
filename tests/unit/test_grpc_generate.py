"""Generation of etcd's protobuf modules: the text transformation, the gateway routes read
from the annotations, the stamp that decides regeneration, and where the modules go."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from etcdwamp.grpc import generate as g
from etcdwamp.grpc import pb

ROOT = Path(__file__).resolve().parents[2]

GOGO_FILE = """\
syntax = "proto3";
package mvccpb;

import "gogoproto/gogo.proto";

option (gogoproto.marshaler_all) = true;
option go_package = "go.etcd.io/etcd/api/v3/mvccpb";

// a comment with option (x) = { and [ and " in it
message KeyValue {
  bytes key = 1;
  int64 lease = 6 [(gogoproto.nullable) = false, packed = true];
  string s = 7 [(versionpb.etcd_version_field) = "3.5"];
  option (versionpb.etcd_version_msg) = "3.5";
}
"""

ANNOTATED_SERVICE = """\
syntax = "proto3";
package etcdserverpb;

import "etcd/api/mvccpb/kv.proto";
import "google/api/annotations.proto";
import "etcd/api/versionpb/version.proto";

service KV {
  // Range gets the keys; a comment that names post: "/v3/not/a/route"
  rpc Range(RangeRequest) returns (RangeResponse) {
      option (google.api.http) = {
        post: "/v3/kv/range"
        body: "*"
    };
  }
}

service Lease {
  rpc LeaseKeepAlive(stream LeaseKeepAliveRequest) returns (stream LeaseKeepAliveResponse) {
      option (google.api.http) = {
        post: "/v3/lease/keepalive"
        body: "*"
    };
  }
  rpc LeaseTimeToLive(LeaseTimeToLiveRequest) returns (LeaseTimeToLiveResponse) {
      option (google.api.http) = {
        post: "/v3/lease/timetolive"
        body: "*"
        additional_bindings {
            post: "/v3/kv/lease/timetolive"
            body: "*"
        }
    };
  }
  rpc Unannotated(A) returns (B) {}
}

enum AlarmType {
  NONE = 0;
  CORRUPT = 2 [(versionpb.etcd_version_enum_value) = "3.5"];
}
"""


def test_custom_options_and_their_imports_are_stripped_standard_ones_kept() -> None:
    out = g.strip_options(GOGO_FILE)
    assert "gogoproto" not in out and "versionpb" not in out and "comment" not in out
    assert 'option go_package = "go.etcd.io/etcd/api/v3/mvccpb";' in out
    assert "int64 lease = 6 [packed = true];" in out
    assert "string s = 7;" in out and "bytes key = 1;" in out


def test_aggregate_options_of_rpcs_are_stripped_whole() -> None:
    out = g.strip_options(ANNOTATED_SERVICE)
    assert "google" not in out and "post:" not in out and "additional_bindings" not in out
    assert 'import "etcd/api/mvccpb/kv.proto";' in out  # a vendored file stays imported
    assert "rpc Range(RangeRequest) returns (RangeResponse) {" in out
    assert "CORRUPT = 2;" in out


def test_strings_with_braces_and_semicolons_do_not_end_an_option() -> None:
    text = 'option (x.y) = { a: "};{" b: 1 };\nmessage M { int32 f = 1; }\n'
    assert g.strip_options(text).strip() == "message M { int32 f = 1; }"


def test_unterminated_option_is_refused() -> None:
    with pytest.raises(g.GenerateError):
        g.strip_options('option (x) = { a: 1 ')


def test_prepare_prefixes_the_package_and_points_imports_at_the_prepared_copies() -> None:
    out = g.prepare(ANNOTATED_SERVICE)
    assert "package etcdwamp.etcdserverpb;" in out
    assert 'import "etcdwamp/grpc/_pb/kv.proto";' in out
    with pytest.raises(g.GenerateError, match="not vendored"):
        g.prepare('syntax = "proto3";\npackage p;\nimport "other/thing.proto";\n')


def test_routes_come_from_the_http_annotations_with_their_methods() -> None:
    routes = g.http_routes(ANNOTATED_SERVICE, "rpc_pb2")
    assert set(routes) == {"/kv/range", "/lease/keepalive", "/lease/timetolive",
                           "/kv/lease/timetolive"}
    assert routes["/kv/range"] == g.Route("/etcdserverpb.KV/Range", "RangeRequest",
                                          "RangeResponse", "rpc_pb2", False, False)
    keepalive = routes["/lease/keepalive"]
    assert keepalive.method == "/etcdserverpb.Lease/LeaseKeepAlive"
    assert keepalive.client_streaming and keepalive.server_streaming
    assert routes["/kv/lease/timetolive"] == routes["/lease/timetolive"]


def test_every_request_path_of_the_wire_layer_has_a_route() -> None:
    """The gateway paths the wire layer and the streams post to are all bound to an RPC in
    the vendored files (so the codec can serve each of them)."""
    import re

    package = ROOT / "etcdwamp"
    paths = set()
    for path in [*package.glob("wire/*.py"), *package.glob("*.py")]:
        paths |= set(re.findall(r'"(/(?:kv|lease|auth|cluster|maintenance|election|lock|watch)'
                                r'[a-z/_-]*)"', path.read_text()))
    assert {"/kv/range", "/watch", "/election/observe", "/lock/lock"} <= paths
    assert paths <= set(pb.ROUTES), paths - set(pb.ROUTES)


def test_vendored_routes_name_etcds_methods() -> None:
    assert pb.ROUTES["/kv/range"][0] == "/etcdserverpb.KV/Range"
    assert pb.ROUTES["/watch"][0] == "/etcdserverpb.Watch/Watch"
    assert pb.ROUTES["/maintenance/transfer-leadership"][0] == \
        "/etcdserverpb.Maintenance/MoveLeader"
    assert pb.ROUTES["/election/campaign"][0] == "/v3electionpb.Election/Campaign"
    assert pb.ROUTES["/lock/unlock"][0] == "/v3lockpb.Lock/Unlock"


def test_generated_messages_live_in_the_private_proto_package() -> None:
    """Other clients' modules register ``etcdserverpb.RangeRequest``: ours must not."""
    assert pb.rpc_pb2.RangeRequest.DESCRIPTOR.full_name == "etcdwamp.etcdserverpb.RangeRequest"
    assert pb.kv_pb2.DESCRIPTOR.name == "etcdwamp/grpc/_pb/kv.proto"
    assert pb.rpc_pb2.__name__ == "etcdwamp.grpc._pb.rpc_pb2"


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours first", "theirs first"])
def test_a_foreign_etcdserverpb_module_can_be_loaded_beside_ours(ours_first: bool) -> None:
    """A file as other clients generate it (package ``etcdserverpb``, named ``rpc.proto``)
    registers in the same default pool as ours without a clash, in either order (in a
    child process: the default pool of this one is left as it was)."""
    foreign = (
        "from google.protobuf import descriptor_pb2, descriptor_pool\n"
        "f = descriptor_pb2.FileDescriptorProto(name='rpc.proto', package='etcdserverpb')\n"
        "f.message_type.add(name='RangeRequest')\n"
        "descriptor_pool.Default().Add(f)\n"
    )
    ours = "from etcdwamp.grpc import pb\n"
    check = (
        "from google.protobuf import descriptor_pool\n"
        "assert descriptor_pool.Default().FindMessageTypeByName('etcdserverpb.RangeRequest')\n"
        "assert pb.rpc_pb2.RangeRequest(key=b'k').SerializeToString() == b'\\n\\x01k'\n"
    )
    code = (ours + foreign if ours_first else foreign + ours) + check
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def _generate_into(directory: Path) -> float:
    g.generate(directory)
    return (directory / g.STAMP_FILE).stat().st_mtime_ns


def test_fresh_modules_are_used_as_they_are(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    stamp = _generate_into(package)
    assert pb.ensure_modules(package, tmp_path / "cache") == package
    assert (package / g.STAMP_FILE).stat().st_mtime_ns == stamp
    assert not (tmp_path / "cache").exists()
    assert {"rpc_pb2.py", "rpc_pb2.pyi", "kv_pb2.py", "routes.py", "__init__.py"} <= \
        {p.name for p in package.iterdir()}


def test_stale_modules_are_regenerated(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    _generate_into(package)
    stamp = package / g.STAMP_FILE
    stamp.write_text(g.stamp_text("0" * 64, g.protoc_version() or ""))
    (package / "rpc_pb2.py").write_text("raise ImportError('stale')\n")
    assert pb.ensure_modules(package, tmp_path / "cache") == package
    assert stamp.read_text() == g.stamp_text(g.source_digest(), g.protoc_version() or "")
    assert "stale" not in (package / "rpc_pb2.py").read_text()


def test_another_protoc_version_regenerates(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    _generate_into(package)
    (package / g.STAMP_FILE).write_text(g.stamp_text(g.source_digest(), "0.0.1"))
    pb.ensure_modules(package, tmp_path / "cache")
    assert (package / g.STAMP_FILE).read_text().endswith(f"protoc {g.protoc_version()}\n")


def test_a_read_only_package_dir_sends_the_modules_to_the_cache(tmp_path: Path) -> None:
    # A directory below a regular file cannot be created, even by root.
    blocker = tmp_path / "site-packages"
    blocker.write_text("")
    cache = tmp_path / "cache"
    found = pb.ensure_modules(blocker / "_pb", cache)
    assert found == cache / g.source_digest()[:16]
    assert (found / "rpc_pb2.py").is_file()
    assert pb.ensure_modules(blocker / "_pb", cache) == found  # and found there next time


def test_without_protoc_fresh_modules_still_serve_and_missing_ones_name_the_extra(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pkg"
    _generate_into(package)
    (package / g.STAMP_FILE).write_text(g.stamp_text(g.source_digest(), "0.0.1"))
    monkeypatch.setattr(pb, "protoc_version", lambda: None)
    assert pb.ensure_modules(package, tmp_path / "cache") == package
    with pytest.raises(ImportError, match=r"pip install 'etcdwamp\[grpc\]'"):
        pb.ensure_modules(tmp_path / "empty", tmp_path / "cache")


def test_generate_without_protoc_says_so(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(g, "protoc_version", lambda: None)
    with pytest.raises(g.GenerateError, match="grpcio-tools"):
        g.generate(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_first_import_from_the_cache_when_the_package_has_none(tmp_path: Path) -> None:
    """``import etcdwamp.grpc.pb`` in a fresh interpreter, from a copy of the package whose
    ``_pb`` cannot be created (a file is in its place): the modules are generated into
    $XDG_CACHE_HOME and imported from there under their usual names."""
    shutil.copytree(ROOT / "etcdwamp", tmp_path / "site" / "etcdwamp",
                    ignore=shutil.ignore_patterns("_pb", "__pycache__"))
    (tmp_path / "site" / "etcdwamp" / "grpc" / "_pb").write_text("")
    code = ("from pathlib import Path; import etcdwamp.grpc.pb as pb\n"
            "print(Path(pb.rpc_pb2.__file__).parent, pb.rpc_pb2.__name__)\n"
            "print(pb.rpc_pb2.RangeRequest(key=b'k').SerializeToString())\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"),
               PYTHONPATH=str(tmp_path / "site"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    expected = tmp_path / "xdg" / "etcdwamp" / "grpc-pb" / g.source_digest()[:16]
    assert done.stdout.splitlines() == [f"{expected} etcdwamp.grpc._pb.rpc_pb2",
                                        "b'\\n\\x01k'"]


def test_build_without_grpcio_tools_skips_generation_and_says_why(tmp_path: Path) -> None:
    """setup.py's build_py goes on without protoc (the modules come on first use)."""
    code = (
        "import importlib.metadata as m, runpy, sys\n"
        "real = m.version\n"
        "def version(name):\n"
        "    if name == 'grpcio-tools': raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.version = version\n"
        f"sys.argv = ['setup.py', 'build_py', '--build-lib', {str(tmp_path / 'lib')!r}]\n"
        "runpy.run_path('setup.py', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "protobuf modules not generated" in done.stdout + done.stderr
    assert "grpcio-tools" in done.stdout + done.stderr
    assert (tmp_path / "lib" / "etcdwamp" / "grpc" / "generate.py").is_file()
    assert not (tmp_path / "lib" / "etcdwamp" / "grpc" / "_pb").exists()

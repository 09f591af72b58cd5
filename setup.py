"""A shim for tools that still call ``setup.py``; all metadata is in pyproject.toml.

One addition: ``build_py`` also generates etcd's protobuf modules into the build
(``etcdwamp/grpc/_pb``) when grpcio-tools is installed; without it the build goes on
and says why it skipped them (``import etcdwamp.grpc.pb`` generates them on first use).
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithProtobuf(build_py):
    """``build_py`` that also writes the generated protobuf modules into the build."""

    def run(self) -> None:
        super().run()
        if self.dry_run:
            return
        # By file path: importing the etcdwamp package would need its dependencies.
        spec = importlib.util.spec_from_file_location(
            "_etcdwamp_generate", HERE / "etcdwamp" / "grpc" / "generate.py")
        assert spec is not None and spec.loader is not None
        generate = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = generate  # dataclasses look their module up there
        spec.loader.exec_module(generate)
        out = Path(self.build_lib, "etcdwamp", "grpc", "_pb")
        try:
            generate.generate(out, proto_dir=HERE / "etcdwamp" / "grpc" / "proto")
        except generate.GenerateError as exc:
            self.warn(f"etcdwamp: protobuf modules not generated ({exc}); "
                      "etcdwamp.grpc generates them on first use")
        else:
            self.announce(f"etcdwamp: generated protobuf modules into {out}", level=2)


setup(cmdclass={"build_py": BuildPyWithProtobuf})

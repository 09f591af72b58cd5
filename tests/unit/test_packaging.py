"""The sdist and wheel as PyPI would get them, and a base install without Autobahn.

Builds from a copy of the working tree (so the shared tree gets no build/ or
egg-info), then installs the wheel with its base dependencies only into a fresh
virtualenv (PyPI, or pip's cache): ``import etcdwamp`` must work there, and
``import etcdwamp.wamp``, ``import etcdwamp.prometheus`` and ``import etcdwamp.grpc.pb``
must say which extra to install.
"""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import etcdwamp

ROOT = Path(__file__).resolve().parents[2]
_SKIP = shutil.ignore_patterns(".venv", ".git", "node_modules", "build", "dist", "*.egg-info",
                               "__pycache__", ".*_cache", ".hypothesis", "_build")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    work = tmp_path_factory.mktemp("pkg")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=_SKIP)
    out = work / "dist"
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(source)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield next(out.glob("*.tar.gz")), next(out.glob("*.whl"))


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))


def test_sdist_ships_license_changes_and_readme(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"LICENSE", "CHANGES.rst", "README.rst", "pyproject.toml", "etcdwamp/py.typed",
            "etcdwamp/cli.py"} <= names


def test_wheel_metadata(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    assert wheel.name == f"etcdwamp-{etcdwamp.__version__}-py3-none-any.whl"
    assert sdist.name == f"etcdwamp-{etcdwamp.__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
        assert "etcdwamp/py.typed" in names
        entry = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "etcdwamp = etcdwamp.cli:main" in entry
    meta = _metadata(wheel)
    assert meta["Version"] == etcdwamp.__version__
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    assert f"Programming Language :: Python :: {sys.version_info[0]}.{sys.version_info[1]}" \
        in classifiers
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Source", "Issues", "Changelog", "Documentation"} <= set(urls)
    base = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    names = {r.split(">")[0].split("[")[0].split("=")[0].strip().lower() for r in base}
    assert names == {"twisted", "treq", "cbor2", "tqdm"}  # no autobahn, no flatbuffers
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"wamp", "flatbuffers", "metrics", "test", "docs", "dev"} <= extras


def test_base_install_imports_without_autobahn(dists: tuple[Path, Path],
                                               tmp_path: Path) -> None:
    _, wheel = dists
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    install = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              str(wheel)], capture_output=True, text=True, timeout=300,
                             check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = ("import importlib.util, etcdwamp, etcdwamp.pmap, etcdwamp.cli, etcdwamp.metrics\n"
             "assert importlib.util.find_spec('autobahn') is None\n"
             "assert importlib.util.find_spec('prometheus_client') is None\n"
             "try:\n"
             "    import etcdwamp.wamp\n"
             "except ImportError as exc:\n"
             "    print(exc)\n"
             "try:\n"
             "    import etcdwamp.prometheus\n"
             "except ImportError as exc:\n"
             "    print(exc)\n"
             "try:\n"
             "    import etcdwamp.grpc.pb\n"
             "except ImportError as exc:\n"
             "    print(exc)\n")
    done = subprocess.run([py, "-c", probe], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "pip install 'etcdwamp[wamp]'" in done.stdout
    assert "pip install 'etcdwamp[metrics]'" in done.stdout
    assert "etcdwamp.grpc needs protobuf: pip install 'etcdwamp[grpc]'" in done.stdout
    version = subprocess.run([str(venv / "bin" / "etcdwamp"), "--version"], capture_output=True,
                             text=True, timeout=60, check=False)
    assert version.stdout == f"etcdwamp {etcdwamp.__version__}\n"


def test_autobahn_serializers_import_without_the_numpy_traceback() -> None:
    """scripts/constraints.txt keeps NumPy where Autobahn's optional UBJSON serializer
    (bjdata, built against NumPy 1.x) imports cleanly, so the demo prints no traceback."""
    done = subprocess.run([sys.executable, "-c", "import autobahn.wamp.serializer"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "NumPy" not in done.stderr and "Traceback" not in done.stderr, done.stderr

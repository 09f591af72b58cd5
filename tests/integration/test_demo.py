"""scripts/run_demo.py stops cleanly on SIGINT, SIGTERM and SIGHUP, also when started
the way a non-interactive shell starts a background job (SIGINT ignored): no etcd, no
Crossbar controller or worker, no temporary directory is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from waiting import until

ROOT = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> set[int]:
    """The PIDs of every process below ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                # "pid (comm) state ppid ...": comm may hold spaces.
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ignore_sigint() -> None:
    # What bash does to a background job when job control is off (a script,
    # ssh host 'cmd &', cron): the job starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture
def demo_tmp(tmp_path: Path) -> Path:
    """The demo's TMPDIR: every temporary directory it creates lands here."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    return directory


class Demos:
    """The demos a test started, and the processes it saw below them: whatever still
    runs at the end (a failed test) is killed by PID."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[subprocess.Popen[bytes]] = []
        self.seen: set[int] = set()

    def launch(self, output: Path, *args: str) -> subprocess.Popen[bytes]:
        """Start the demo as a background job of a non-interactive shell, output to ``output``."""
        env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONPATH": str(ROOT)}
        with open(output, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "run_demo.py"), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                start_new_session=True, preexec_fn=ignore_sigint)
        self.started.append(process)
        return process

    def below(self, process: subprocess.Popen[bytes]) -> set[int]:
        """The processes now below ``process`` (remembered for the clean-up)."""
        found = descendants(process.pid)
        self.seen |= found
        return found

    def clean_up(self) -> None:
        for process in self.started:
            if process.poll() is None:
                self.seen |= descendants(process.pid)
                process.kill()
                process.wait()
        for pid in self.seen:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def demos(demo_tmp: Path) -> Iterator[Demos]:
    """Start demos; nothing they started outlives the test."""
    started = Demos(demo_tmp)
    yield started
    started.clean_up()


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest_twisted.ensureDeferred
async def test_serving_demo_stops_on_signal(sig: signal.Signals, tmp_path: Path,
                                            demo_tmp: Path,
                                            demos: Demos) -> None:
    """Once the demo serves the page, ``sig`` stops it: it exits 128 + signal number and
    etcd, the Crossbar controller and its worker are gone, the temp dirs deleted."""
    output = tmp_path / "demo.out"
    demo = demos.launch(output, "--no-examples")
    await until(lambda: "Live demo:" in output.read_text() or demo.poll() is not None,
                timeout=120, why=output.read_text)
    assert demo.poll() is None, output.read_text()
    children = demos.below(demo)
    commands = " | ".join(command(pid) for pid in children)
    assert "etcd" in commands and "crossbar" in commands, commands
    assert len(children) >= 3, commands  # etcd, crossbar controller, router/container worker
    assert os.listdir(demo_tmp), "the demo's temp dirs are not under TMPDIR"

    demo.send_signal(sig)
    await until(lambda: demo.poll() is not None, timeout=90, why=output.read_text)

    assert demo.returncode == 128 + sig, output.read_text()
    assert f"stopped ({sig.name})" in output.read_text()
    left = [command(pid) for pid in children if alive(pid)]
    assert left == [], left
    assert os.listdir(demo_tmp) == []


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_demo_stops_on_sigterm_while_running_an_example(
        tmp_path: Path, demo_tmp: Path, demos: Demos) -> None:
    """SIGTERM during the examples (before Crossbar starts) stops the running example
    and etcd, and deletes etcd's data directory."""
    output = tmp_path / "demo.out"
    demo = demos.launch(output)
    running: set[int] = set()

    def example_running() -> bool:
        running.update(pid for pid in demos.below(demo) if "examples/" in command(pid))
        return bool(running) or demo.poll() is not None

    await until(example_running, timeout=120, why=output.read_text)
    assert demo.poll() is None, output.read_text()
    children = demos.below(demo)
    assert any("etcd" in command(pid) for pid in children), children

    demo.send_signal(signal.SIGTERM)
    await until(lambda: demo.poll() is not None, timeout=90, why=output.read_text)

    assert demo.returncode == 128 + signal.SIGTERM, output.read_text()
    left = [command(pid) for pid in children | running if alive(pid)]
    assert left == [], left
    assert os.listdir(demo_tmp) == []


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_printed_hint_runs_as_pasted(tmp_path: Path, demos: Demos) -> None:
    """The command the demo prints for the command-line client runs as pasted into a shell
    in the demo's directory (no activated virtualenv, no PYTHONPATH): it writes a note."""
    output = tmp_path / "demo.out"
    demo = demos.launch(output, "--no-examples")
    await until(lambda: "Live demo:" in output.read_text() or demo.poll() is not None,
                timeout=120, why=output.read_text)
    [hint] = [line.split("e.g. ", 1)[1] for line in output.read_text().splitlines()
              if "e.g. " in line]
    shell_env = {name: value for name, value in os.environ.items()
                 if name not in ("PYTHONPATH", "VIRTUAL_ENV", "ETCDWAMP_WRITER_TICKET")}
    venv_bin = os.path.dirname(sys.executable)
    shell_env["PATH"] = os.pathsep.join(
        entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry != venv_bin)
    done = subprocess.run(["sh", "-c", f"{hint} --seconds 0.5"], cwd=ROOT, env=shell_env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "wrote from-python at revision" in done.stdout, done.stdout
    demo.send_signal(signal.SIGTERM)
    await until(lambda: demo.poll() is not None, timeout=90, why=output.read_text)


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_demo_with_three_nodes_serves_through_haproxy_and_stops_on_sighup(
        tmp_path: Path, demo_tmp: Path, demos: Demos) -> None:
    """``--nodes 3``: a 3-member etcd, three Crossbar nodes and HAProxy; the printed URL
    (the balancer's, none of the nodes') serves the page, and SIGHUP stops every one of
    them and deletes their temporary directories."""
    output = tmp_path / "demo.out"
    demo = demos.launch(output, "--no-examples", "--nodes", "3")
    await until(lambda: "Live demo:" in output.read_text() or demo.poll() is not None,
                timeout=180, why=output.read_text)
    assert demo.poll() is None, output.read_text()
    [line] = [line for line in output.read_text().splitlines() if "Live demo: open" in line]
    page, nodes = line.split("open ", 1)[1].split(" in a browser", 1)[0], line.split("(", 1)[1]
    assert page.startswith("http://127.0.0.1:") and page not in nodes, line
    with urllib.request.urlopen(page, timeout=30) as response:
        assert response.status == 200 and b"<html" in response.read().lower()
    children = demos.below(demo)
    commands = [command(pid) for pid in children]
    assert sum("etcd" in c and "--name" in c for c in commands) == 3, commands
    assert sum("crossbar-worker" in c and "RouterController" in c for c in commands) == 3, commands
    assert sum("haproxy" in c and " -db " in c for c in commands) == 1, commands

    demo.send_signal(signal.SIGHUP)
    await until(lambda: demo.poll() is not None, timeout=120, why=output.read_text)

    assert demo.returncode == 128 + signal.SIGHUP, output.read_text()
    left = [command(pid) for pid in children if alive(pid)]
    assert left == [], left
    assert os.listdir(demo_tmp) == []

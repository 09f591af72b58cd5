"""The installed ``etcdwamp`` console script, run as a user runs it, against real etcd servers."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_twisted
from auth_setup import enable_auth
from waiting import until

from etcdwamp import KeySet
from etcdwamp.client import Client
from etcdwamp.testing import EtcdCluster, TLSFiles, free_port, make_test_pki

_found = shutil.which("etcdwamp", path=str(Path(sys.executable).parent))
assert _found is not None, "the etcdwamp console script is not installed beside python"
ETCDWAMP: str = _found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ETCDWAMP_ENDPOINTS", "ETCDCTL_ENDPOINTS", "ETCDWAMP_DEBUG")}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ETCDWAMP, *args], capture_output=True, text=True, input=stdin,
                          env=env if env is not None else clean_env(), timeout=timeout,
                          check=False)


def ok(*args: str, **kwargs: object) -> str:
    done = cli(*args, **kwargs)  # type: ignore[arg-type]
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def one_error_line(done: subprocess.CompletedProcess[str], status: int = 1) -> str:
    """The run failed with ``status`` and said why in exactly one line, no traceback."""
    assert done.returncode == status, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("etcdwamp: error: "), done.stderr
    return lines[0]


def revision(url: str) -> int:
    return int(json.loads(ok("--endpoints", url, "-w", "json", "get", "x"))["header"]["revision"])


# -- kv ----------------------------------------------------------------------------

def test_a_hung_first_endpoint_costs_a_read_one_attempt_timeout(etcd: EtcdCluster,
                                                                 prefix: bytes) -> None:
    """A member that accepts connections and never answers (as a SIGSTOPped etcd
    does: the kernel still completes the handshake), listed first: the read
    moves on after --attempt-timeout, not after --timeout."""
    key = prefix.decode() + "k"
    ok("--endpoints", etcd.url, "put", key, "v")
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        out = ok("--endpoints", f"{url},{etcd.url}", "--attempt-timeout", "0.5", "get", key)
        elapsed = time.monotonic() - started
    assert out == f"{key}\nv\n"
    assert elapsed < 4.0, elapsed  # 0.5 s on the hung one + start-up, far from --timeout 10


def test_a_timeout_is_reported_in_tenths_of_a_second() -> None:
    """A member that never answers, alone: the error names the time waited rounded
    (``within 0.7 s``), not the float left of the deadline (``0.69994897...s``)."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        line = one_error_line(cli("--endpoints", url, "--timeout", "0.7", "get", "k"))
    assert re.search(r"within 0\.[67] s", line), line
    assert not re.search(r"\d\.\d{3}", line), line



def test_put_get_del_like_etcdctl(etcd: EtcdCluster, prefix: bytes) -> None:
    p, url = prefix.decode(), etcd.url
    assert ok("--endpoints", url, "put", p + "a", "1") == "OK\n"
    assert ok("put", p + "b", "--endpoints", url, stdin="from stdin") == "OK\n"
    after_b = revision(url)
    ok("--endpoints", url, "put", p + "c", "3")
    assert ok("--endpoints", url, "get", p + "a") == f"{p}a\n1\n"
    assert ok("--endpoints", url, "get", p, "--prefix") == \
        f"{p}a\n1\n{p}b\nfrom stdin\n{p}c\n3\n"
    assert ok("--endpoints", url, "get", p, "--prefix", "--keys-only", "--limit", "2") == \
        f"{p}a\n{p}b\n"
    assert ok("--endpoints", url, "get", p, "--prefix", "--rev", str(after_b),
              "--keys-only") == f"{p}a\n{p}b\n"
    answer = json.loads(ok("--endpoints", url, "-w", "json", "get", p, "--prefix",
                           "--limit", "1"))
    assert answer["count"] == 3 and answer["more"] is True
    assert answer["kvs"][0]["key"] == __import__("base64").b64encode(prefix + b"a").decode()
    assert ok("--endpoints", url, "del", p, "--prefix") == "3\n"
    assert ok("--endpoints", url, "get", p, "--prefix") == ""


def test_put_refuses_an_empty_stdin_and_writes_an_explicit_empty_value(
        etcd: EtcdCluster, prefix: bytes) -> None:
    """As etcdctl: ``put KEY < /dev/null`` is a usage error and writes nothing;
    ``put KEY ""`` writes the empty value."""
    key, url = prefix.decode() + "e", etcd.url
    refused = one_error_line(cli("--endpoints", url, "put", key, stdin=""), status=2)
    assert 'standard input, which was empty' in refused and '""' in refused
    assert ok("--endpoints", url, "get", key) == ""  # nothing written
    assert ok("--endpoints", url, "put", key, "") == "OK\n"
    assert ok("--endpoints", url, "get", key) == f"{key}\n\n"
    assert ok("--endpoints", url, "get", key, "--keys-only") == f"{key}\n"


def test_endpoints_from_the_environment(etcd: EtcdCluster, prefix: bytes) -> None:
    """ETCDWAMP_ENDPOINTS wins over ETCDCTL_ENDPOINTS, which is used when alone;
    host:port without a scheme works as with etcdctl."""
    p = prefix.decode()
    host_port = etcd.url.split("://", 1)[1]
    dead = f"127.0.0.1:{free_port()}"
    ok("put", p + "k", "v", env=clean_env(ETCDWAMP_ENDPOINTS=host_port,
                                          ETCDCTL_ENDPOINTS=dead))
    assert ok("get", p + "k", env=clean_env(ETCDCTL_ENDPOINTS=host_port)) == f"{p}k\nv\n"
    refused = cli("get", p + "k", env=clean_env(ETCDCTL_ENDPOINTS=dead))
    assert dead in one_error_line(refused)
    # An explicit --endpoints wins over both.
    assert ok("--endpoints", etcd.url, "get", p + "k",
              env=clean_env(ETCDWAMP_ENDPOINTS=dead)) == f"{p}k\nv\n"


def test_failures_are_one_line_with_status_1_and_usage_errors_status_2(
        etcd: EtcdCluster, tmp_path: Path) -> None:
    unreachable = cli("--endpoints", f"127.0.0.1:{free_port()}", "--timeout", "3", "get", "k")
    assert "cannot reach etcd" in one_error_line(unreachable)
    plain = cli("--endpoints", etcd.url.replace("http://", "https://"), "--timeout", "5",
                "get", "k")  # TLS spoken to a plain-HTTP etcd
    line = one_error_line(plain)
    assert "no TLS there? an endpoint that serves plain HTTP needs http://" in line, line
    assert "twisted" not in line and "Failure" not in line, line
    bad_url = cli("--endpoints", "ftp://127.0.0.1:2379", "get", "k")
    assert "ftp://" in one_error_line(bad_url)
    bad_port = cli("--endpoints", "127.0.0.1:notaport", "get", "k")
    assert "notaport" in one_error_line(bad_port)
    missing = cli("--endpoints", etcd.url, "import", str(tmp_path / "nope.jsonl"))
    assert "nope.jsonl: No such file or directory" in one_error_line(missing)
    no_ca = cli("--endpoints", etcd.url, "--cacert", str(tmp_path / "ca.pem"), "get", "k")
    assert "ca.pem" in one_error_line(no_ca)
    compacted = cli("--endpoints", etcd.url, "get", "k", "--rev", "99999999")
    assert "revision" in one_error_line(compacted)
    one_error_line(cli("get"), status=2)
    one_error_line(cli("frobnicate"), status=2)
    one_error_line(cli("get", "k", "--limit", "-1"), status=2)
    one_error_line(cli("lease", "revoke", "not-hex"), status=2)


def _read_then_close(args: list[str], lines: int) -> tuple[list[bytes], int, bytes]:
    """Run etcdwamp as ``etcdwamp ARGS | head -LINES`` would: read that many lines of
    its stdout, close the pipe, and return them, its exit status and its stderr."""
    child = subprocess.Popen([ETCDWAMP, *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=clean_env())
    assert child.stdout is not None and child.stderr is not None
    try:
        got = [child.stdout.readline() for _ in range(lines)]
        child.stdout.close()
        status = child.wait(timeout=120)
        return got, status, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_closed_pipe_ends_get_and_import_dry_run_quietly(
        etcd: EtcdCluster, prefix: bytes, tmp_path: Path) -> None:
    """``etcdwamp get --prefix | head -1`` and ``etcdwamp import --dry-run | head -3``
    on more output than a pipe buffers: no message, and the status of a command
    killed by SIGPIPE (141), as etcdctl's."""
    p = prefix.decode()
    data = tmp_path / "many.jsonl"
    value = "x" * 200
    data.write_text("".join(json.dumps({"key": f"{p}{i:05d}", "value": value}) + "\n"
                            for i in range(2000)))
    ok("--endpoints", etcd.url, "import", "--value-encoding", "utf8", str(data))
    got, status, stderr = _read_then_close(["--endpoints", etcd.url, "get", p, "--prefix"], 1)
    assert got == [f"{p}00000\n".encode()]
    assert (status, stderr) == (128 + signal.SIGPIPE, b"")

    new = tmp_path / "new.jsonl"  # keys not in etcd: each is a "+ KEY" line of 230 bytes
    long_key = p + "n" * 200
    new.write_text("".join(json.dumps({"key": f"{long_key}{i:05d}", "value": "v"}) + "\n"
                           for i in range(1000)))
    got, status, stderr = _read_then_close(
        ["--endpoints", etcd.url, "import", "--value-encoding", "utf8", "--dry-run", str(new)],
        3)
    assert got == [f"+ {long_key}{i:05d}\n".encode() for i in range(3)]
    assert (status, stderr) == (128 + signal.SIGPIPE, b"")
    assert ok("--endpoints", etcd.url, "get", long_key, "--prefix", "--keys-only") == ""


def test_python_dash_m_and_version() -> None:
    import etcdwamp

    module = subprocess.run([sys.executable, "-m", "etcdwamp", "--version"],
                            capture_output=True, text=True, check=False, env=clean_env())
    assert module.returncode == 0 and module.stdout == f"etcdwamp {etcdwamp.__version__}\n"
    assert ok("--version") == module.stdout


_HEAVY = ("twisted", "treq", "aiohttp", "http", "email", "cbor2", "tqdm", "autobahn")
_WITHOUT_TWISTED = f"""
import sys
from etcdwamp.cli import main
status = main(sys.argv[1:])
heavy = [m for m in sys.modules if m.split('.')[0] in {_HEAVY!r}
         or m in ('etcdwamp.client', 'etcdwamp.transport', 'etcdwamp.pmap', 'etcdwamp.cli_ops')]
print(' '.join(sorted(heavy)), file=sys.stderr)
sys.exit(status)
"""


def test_get_put_del_run_without_twisted_or_an_http_library(etcd: EtcdCluster,
                                                            prefix: bytes) -> None:
    """Start-up time (etcdctl's habit: a one-shot command is instant): get, put and
    del import neither Twisted, nor http.client, nor the client, pmap or the operator
    commands; they still do their work. benchmarks/cli_startup.py measures the time."""
    key = prefix.decode() + "k"

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", _WITHOUT_TWISTED, "--endpoints", etcd.url,
                               *args], capture_output=True, text=True, check=False,
                              env=clean_env())
        assert done.returncode == 0 and done.stderr == "\n", (args, done.stderr)
        return done.stdout

    assert run("put", key, "v") == "OK\n"
    assert run("get", key) == f"{key}\nv\n"
    assert run("del", key) == "1\n"


# -- leases, locks, status, compaction --------------------------------------------------

def test_lease_grant_ttl_revoke(etcd: EtcdCluster, prefix: bytes) -> None:
    p, url = prefix.decode(), etcd.url
    granted = ok("--endpoints", url, "lease", "grant", "60").split()
    assert granted[0] == "lease" and granted[2:] == ["granted", "with", "TTL(60s)"]
    lease_id = granted[1]
    ok("--endpoints", url, "put", p + "leased", "v", "--lease", lease_id)
    ttl = ok("--endpoints", url, "lease", "ttl", lease_id, "--keys")
    assert ttl.startswith(f"lease {lease_id} granted with TTL(60s), remaining(")
    assert ttl.endswith(f"attached keys([{p}leased])\n")
    info = json.loads(ok("--endpoints", url, "-w", "json", "lease", "ttl", lease_id))
    assert info["ID"] == int(lease_id, 16) and 0 < info["TTL"] <= 60
    assert ok("--endpoints", url, "lease", "revoke", lease_id) == f"lease {lease_id} revoked\n"
    assert ok("--endpoints", url, "lease", "ttl", lease_id) == \
        f"lease {lease_id} already expired\n"
    assert ok("--endpoints", url, "get", p + "leased") == ""


def test_lock_runs_the_command_while_holding_the_lock(etcd: EtcdCluster, prefix: bytes) -> None:
    """The command sees its lock key in etcd (and in ETCD_LOCK_KEY), its exit status is
    the CLI's, and the lock is gone afterwards."""
    name, url = prefix.decode() + "lock", etcd.url
    script = (f'"{ETCDWAMP}" --endpoints {url} get "$ETCD_LOCK_KEY" --keys-only; '
              'echo "rev=$ETCD_LOCK_REV"; exit 7')
    done = cli("--endpoints", url, "lock", name, "--", "sh", "-c", script)
    assert done.returncode == 7, done.stderr
    key_line, rev_line = done.stdout.splitlines()
    assert key_line.startswith(name + "/") and int(rev_line.removeprefix("rev=")) > 0
    assert ok("--endpoints", url, "get", name, "--prefix", "--keys-only") == ""
    missing = cli("--endpoints", url, "lock", name, "--", "no-such-command-here")
    assert "no-such-command-here: command not found" in one_error_line(missing)


def test_lock_without_a_command_holds_until_ctrl_c(etcd: EtcdCluster, prefix: bytes) -> None:
    name, url = prefix.decode() + "held", etcd.url
    holder = subprocess.Popen([ETCDWAMP, "--endpoints", url, "lock", name],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    try:
        key = _Lines(holder).take(1)[0]
        assert key.startswith(name + "/")
        assert ok("--endpoints", url, "get", name, "--prefix", "--keys-only") == key + "\n"
        holder.send_signal(signal.SIGINT)
        assert holder.wait(timeout=30) == 0
        assert holder.stderr is not None and holder.stderr.read() == b""
        assert ok("--endpoints", url, "get", name, "--prefix", "--keys-only") == ""
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


@pytest_twisted.ensureDeferred
async def test_lock_lost_while_the_command_runs_terminates_it_and_fails(
        etcd: EtcdCluster, prefix: bytes, tmp_path: Path) -> None:
    """Another client revokes the lock's lease while the command runs: the
    command gets SIGTERM at the next renewal (ttl/3) and the CLI fails with one
    line, instead of letting the command run on beside a new holder."""
    from twisted.internet import reactor

    name, url = prefix.decode() + "revoked", etcd.url
    started, terminated = tmp_path / "started", tmp_path / "terminated"
    # `sleep & wait`: the trap runs at once on SIGTERM (and stops the sleep).
    script = (f'trap \'echo TERM > "{terminated}"; kill $!; exit 143\' TERM; '
              f'echo $$ > "{started}"; sleep 60 & wait')
    holder = subprocess.Popen([ETCDWAMP, "--endpoints", url, "lock", "--ttl", "3", name,
                               "--", "sh", "-c", script],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    other = Client(reactor, url=url)
    child_pid = None
    try:
        await until(lambda: started.exists() and started.read_text().strip(),
                    why=lambda: f"the command did not start: {holder.poll()}")
        child_pid = int(started.read_text())
        held = await other.get(KeySet(name.encode() + b"/", prefix=True))
        assert held.count == 1 and held.kvs[0].lease
        revoked_at = time.monotonic()
        await other.lease_revoke(held.kvs[0].lease)
        await until(lambda: holder.poll() is not None, timeout=10,
                    why="the CLI did not end after its lock's lease was revoked")
        ended_in = time.monotonic() - revoked_at
        assert holder.stderr is not None
        done = subprocess.CompletedProcess(holder.args, holder.returncode, "",
                                           holder.stderr.read().decode())
        line = one_error_line(done)
        assert f"lock {name} lost while sh ran; it was sent SIGTERM" in line
        assert terminated.read_text() == "TERM\n"
        assert not Path(f"/proc/{child_pid}").exists()
        assert ended_in < 1.0 + 2.0  # the next renewal (every ttl/3 = 1 s), and margin
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if child_pid is not None and Path(f"/proc/{child_pid}").exists():
            os.kill(child_pid, signal.SIGTERM)  # its trap stops its sleep too
        await other.close()


def test_status_and_compact(etcd: EtcdCluster, prefix: bytes) -> None:
    url = etcd.url
    # status is endpoint status, in etcdctl's format: "20 kB, true, false", JSON by member
    status = json.loads(ok("--endpoints", url, "-w", "json", "status"))
    assert [row["Endpoint"] for row in status] == [url]
    assert status[0]["Status"]["version"].startswith("3.")
    assert status[0]["Status"]["leader"] == status[0]["Status"]["header"]["member_id"]
    fields = ok("--endpoints", url, "status").rstrip("\n").split(", ")
    assert ok("--endpoints", url, "endpoint", "status").rstrip("\n").split(", ")[:5] == \
        fields[:5]
    assert len(fields) == 10 and fields[0] == url and fields[4:6] == ["true", "false"]
    assert re.fullmatch(r"\d+(\.\d)? [kMG]?B", fields[3]), fields
    assert "DB SIZE" in ok("--endpoints", url, "-w", "table", "status")
    # The operator commands (etcdwamp.cli_ops) are on the same command, with its options.
    assert ok("member", "list", "--endpoints", url).rstrip().endswith(f", {url}, false")
    ok("--endpoints", url, "put", prefix.decode() + "c", "1")
    rev = revision(url)
    assert ok("--endpoints", url, "compact", str(rev)) == f"compacted revision {rev}\n"
    old = cli("--endpoints", url, "get", "x", "--rev", str(rev - 1))
    assert "compacted" in one_error_line(old)


def test_endpoint_commands_echo_the_endpoints_as_typed(etcd: EtcdCluster) -> None:
    """As etcdctl: ``127.0.0.1:2379`` is printed so, not as the URL it was made into,
    by ``status``, ``endpoint status|health|hashkv`` and ``defrag``, in every
    format and in the error of an endpoint that fails; from the environment too."""
    host_port = etcd.url.split("://", 1)[1]
    dead = f"127.0.0.1:{free_port()}"
    for command in (["status"], ["endpoint", "status"]):
        assert ok("--endpoints", host_port, *command).startswith(f"{host_port}, ")
        rows = json.loads(ok("--endpoints", host_port, "-w", "json", *command))
        assert [row["Endpoint"] for row in rows] == [host_port]
        table = ok("--endpoints", host_port, "-w", "table", *command)
        assert f"| {host_port} |" in table, table
    from_env = ok("status", env=clean_env(ETCDCTL_ENDPOINTS=host_port))
    assert from_env.startswith(f"{host_port}, "), from_env
    typed_url = ok("--endpoints", etcd.url + "/", "status")  # a URL, as typed, too
    assert typed_url.startswith(f"{etcd.url}/, "), typed_url
    assert ok("--endpoints", host_port, "endpoint", "health").startswith(
        f"{host_port} is healthy: ")
    assert ok("--endpoints", host_port, "defrag") == \
        f"Finished defragmenting etcd member[{host_port}]\n"
    partly = cli("--endpoints", f"{host_port},{dead}", "--timeout", "3", "status")
    assert partly.returncode == 1
    assert partly.stdout.startswith(f"{host_port}, ") and partly.stdout.count("\n") == 1
    assert partly.stderr.startswith(f"Failed to get the status of endpoint {dead} ("), \
        partly.stderr


# -- watch ---------------------------------------------------------------------------

class _Lines:
    """Lines of a child's stdout as they come, with a deadline per wait."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stream, selectors.EVENT_READ)
        self.buffer = b""

    def take(self, n: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while self.buffer.count(b"\n") < n:
            left = deadline - time.monotonic()
            if left <= 0 or not self.selector.select(left):
                raise AssertionError(f"wanted {n} lines, got {self.buffer!r}")
            chunk = os.read(self.stream.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"stdout closed after {self.buffer!r}")
            self.buffer += chunk
        lines = self.buffer.split(b"\n")
        self.buffer = b"\n".join(lines[n:])
        return [line.decode() for line in lines[:n]]


def test_watch_prints_events_across_an_etcd_restart_until_ctrl_c(
        etcd_factory: Callable[..., EtcdCluster], prefix: bytes) -> None:
    cluster = etcd_factory(1)
    url, p = cluster.url, prefix.decode()
    start = revision(url) + 1  # from here, so no event depends on when the watch starts
    watch = subprocess.Popen([ETCDWAMP, "--endpoints", url, "watch", p, "--prefix",
                              "--rev", str(start)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=clean_env())
    try:
        lines = _Lines(watch)
        ok("--endpoints", url, "put", p + "a", "1")
        assert lines.take(3) == ["PUT", p + "a", "1"]
        cluster.members[0].kill()
        cluster.members[0].start()
        cluster.wait_healthy()
        ok("--endpoints", url, "put", p + "b", "2")
        ok("--endpoints", url, "del", p + "a")
        assert lines.take(6) == ["PUT", p + "b", "2", "DELETE", p + "a", ""]
        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=30) == 128 + signal.SIGINT  # 130, as etcdctl's watch
        assert watch.stderr is not None and watch.stderr.read() == b""
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()


# -- TLS and auth ----------------------------------------------------------------------

@pytest.fixture
def pki() -> Iterator[TLSFiles]:
    with tempfile.TemporaryDirectory(prefix="etcdwamp-cli-pki-") as directory:
        yield make_test_pki(directory)


def test_tls_with_client_certificate(etcd_factory: Callable[..., EtcdCluster],
                                     pki: TLSFiles) -> None:
    cluster = etcd_factory(1, tls=replace(pki, client_cert_auth=True))
    host_port = cluster.url.split("://", 1)[1]
    tls = ["--endpoints", host_port, "--cacert", pki.ca_cert, "--cert", pki.client_cert,
           "--key", pki.client_key]  # host:port becomes https:// with TLS options
    assert ok(*tls, "put", "k", "over tls") == "OK\n"
    assert ok(*tls, "get", "k") == "k\nover tls\n"
    no_client_cert = cli("--endpoints", host_port, "--cacert", pki.ca_cert, "--timeout", "5",
                         "get", "k")
    assert "no TLS there" not in one_error_line(no_client_cert)  # TLS, refused: not that
    untrusted = cli("--endpoints", "https://" + host_port, "--cert", pki.client_cert,
                    "--key", pki.client_key, "--timeout", "5", "get", "k")
    one_error_line(untrusted)
    half = cli(*tls[:4], "--cert", pki.client_cert, "get", "k")
    assert "--cert and --key go together" in one_error_line(half)


@pytest_twisted.ensureDeferred
async def test_password_auth(etcd_factory: Callable[..., EtcdCluster]) -> None:
    """--user/--password, or --user NAME:PASSWORD. (Over plain http: etcd 3.4's gateway
    refuses requests that carry a client certificate once auth is on, and asks every
    TLS client for one when it trusts a CA.)"""
    from twisted.internet import reactor

    cluster = etcd_factory(1)
    url = ["--endpoints", cluster.url]
    admin = Client(reactor, url=cluster.url)
    try:
        await admin.put(b"open/k", b"before auth")
    finally:
        await admin.close()
    await enable_auth(cluster.url)
    assert ok(*url, "--user", "app", "--password", "apppw", "put", "app/k", "v") == "OK\n"
    assert ok(*url, "--user", "app:apppw", "get", "app/k") == "app/k\nv\n"
    piped = cli(*url, "--user", "app", "get", "app/k", stdin="apppw\n")  # asked for
    assert (piped.returncode, piped.stdout, piped.stderr) == (0, "app/k\nv\n", "")
    denied = cli(*url, "--user", "app:apppw", "get", "open/k")
    assert "PermissionDenied" in one_error_line(denied)
    wrong = cli(*url, "--user", "app:nope", "get", "app/k")
    assert "AuthenticationFailed" in one_error_line(wrong)
    anonymous = cli(*url, "get", "app/k")
    one_error_line(anonymous)

"""Pytest plugin: real redis-server processes and a 3-master Redis Cluster on loopback ports."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

START_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0
PORT_ATTEMPTS = 5

_running: list[RedisServer] = []


def _kill_leftovers() -> None:
    # Last resort for an interrupted session; fixtures normally stop their servers.
    for server in list(_running):
        server.stop()


atexit.register(_kill_leftovers)


def _executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # Fail, never skip: a skipped Redis test would pass CI without testing anything.
        pytest.fail(
            f"{name} is not on PATH; the Redis and Redis Cluster tests need a real server. "
            "Install it with `bash scripts/setup.sh --dev` (or `apt-get install redis-server`).",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PortInUse(RuntimeError):
    """The chosen port was taken between picking it and redis-server binding it."""


@dataclass
class RedisServer:
    """One redis-server process; ``stop()``/``start()`` restart it on the same port(s)."""

    workdir: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    cluster_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        return self.workdir / "redis.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A plain sync client for setup and inspection; no retries, so failures are quick."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def start(self) -> None:
        if self.running:
            return
        args = [
            _executable("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.logfile),
            *self.extra_args,
        ]
        if self.cluster_port is not None:
            args += ["--cluster-port", str(self.cluster_port)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        _running.append(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self._log_tail()
                self._forget()
                if "already in use" in log:
                    raise PortInUse(f"port {self.port} is taken")
                raise RuntimeError(f"redis-server on port {self.port} exited:\n{log}")
            if self._answers_as_us():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"redis-server on port {self.port} did not answer PING:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._forget()

    def _forget(self) -> None:
        self.proc = None
        if self in _running:
            _running.remove(self)

    def _answers_as_us(self) -> bool:
        """PING works and the answer comes from our process, not a stranger on the port."""
        assert self.proc is not None
        try:
            with self.client(timeout=0.5) as client:
                info = client.info("server")
        except (redis.RedisError, OSError):
            return False
        return bool(info.get("process_id") == self.proc.pid)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return "(no log)"


def start_server(workdir: Path, extra_args: list[str], *, cluster: bool = False) -> RedisServer:
    """A started server on free port(s), retrying when another process wins a port race."""
    last: Exception | None = None
    for _ in range(PORT_ATTEMPTS):
        server = RedisServer(
            workdir=workdir,
            port=free_port(),
            extra_args=extra_args,
            cluster_port=free_port() if cluster else None,
        )
        try:
            server.start()
        except PortInUse as exc:
            last = exc
            continue
        return server
    raise RuntimeError(f"no free port for redis-server after {PORT_ATTEMPTS} attempts: {last}")


@dataclass
class RedisClusterServers:
    """A running Redis Cluster: three masters, no replicas."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(basedir: Path, masters: int = 3) -> RedisClusterServers:
    nodes: list[RedisServer] = []
    try:
        for i in range(masters):
            workdir = basedir / f"node{i}"
            workdir.mkdir()
            args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(workdir / "nodes.conf"),
                "--cluster-node-timeout",
                "5000",
            ]
            nodes.append(start_server(workdir, args, cluster=True))
        create = subprocess.run(
            [
                _executable("redis-cli"),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=CLUSTER_TIMEOUT,
            check=False,
        )
        if create.returncode != 0:
            raise RuntimeError(
                f"redis-cli --cluster create failed:\n{create.stdout}{create.stderr}"
            )
        _wait_cluster_ok(nodes)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + CLUSTER_TIMEOUT
    pending = list(nodes)
    while pending:
        node = pending[0]
        with node.client() as client:
            fields = client.cluster("INFO")  # redis-py parses it into a dict
        known = int(fields.get("cluster_known_nodes", 0))
        if fields.get("cluster_state") == "ok" and known == len(nodes):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"cluster not ok on port {node.port}: {fields}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session; tests may ``stop()`` and ``start()`` it."""
    with tempfile.TemporaryDirectory(prefix="redis-test-") as tmp:
        server = start_server(Path(tmp), [])
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty, running redis-server."""
    # Restart it if an earlier test stopped it and failed before restarting.
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A real 3-master Redis Cluster for the whole session."""
    with tempfile.TemporaryDirectory(prefix="redis-cluster-test-") as tmp:
        cluster = start_cluster(Path(tmp))
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterServers) -> str:
    """The URL of the first node of the cluster, with every master emptied."""
    redis_cluster.flushall()
    return redis_cluster.url

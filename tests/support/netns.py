"""Hosts for multi-host tests: Linux network namespaces on one bridge, and relays to the test's servers.

Each :class:`Host` is a network namespace with its own loopback and one veth interface on a
private bridge (``10.231.<n>.0/24``, never routed off the machine); the bridge itself
(``.1``) stands for the database host: :class:`Relay` listens there and forwards to the
PostgreSQL and Redis the suite already runs (a loopback port or a unix socket), so processes
in the namespaces reach them only over the network, like a separate machine. A process runs
on a host through ``ip netns exec``; nothing but a folder of its own is given to it.

Needs root (``ip netns``); :func:`namespaces_available` says whether this machine can.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SUBNET = "10.231"


def namespaces_available() -> bool:
    """Whether this process may create network namespaces (root, and ``ip`` installed)."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Host:
    """One network namespace: its address on the bridge and the processes started on it."""

    name: str
    address: str
    root: Path
    """The host's own disk: every process it runs gets a folder under it, and nothing else."""
    processes: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)

    def start(self, label: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Run ``argv`` on this host in its own session, logging to ``<root>/<label>.log``."""
        log = (self.root / f"{label}.log").open("wb")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((label, proc, log))
        return proc

    def kill(self) -> None:
        """Pull the plug: SIGKILL every process of this host at once (no shutdown handlers run)."""
        for _, proc, _ in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for _, proc, log in self.processes:
            proc.wait(timeout=10)
            log.close()

    def stop(self) -> None:
        """Stop every process politely (SIGTERM, then SIGKILL after a grace period)."""
        for _, proc, _ in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, log in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            log.close()

    def logs(self) -> str:
        """Every process log of this host, for a failure message."""
        parts = []
        for label, _, _ in self.processes:
            text = (self.root / f"{label}.log").read_text(errors="replace")
            parts.append(f"--- {self.name}/{label} ---\n{text[-4000:]}")
        return "\n".join(parts)


class Network:
    """A bridge with namespaces on it; everything made is removed on exit, whatever happened."""

    def __init__(self, base: Path, *, subnet: int) -> None:
        self.base = base
        self.subnet = subnet
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"twbr{self.tag}"
        self.gateway_address = f"{SUBNET}.{subnet}.1"
        self.hosts: list[Host] = []

    def __enter__(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def host(self, name: str) -> Host:
        """Create the next host on the bridge (addresses .2, .3, ...)."""
        index = len(self.hosts) + 2
        namespace = f"tw{self.tag}-{name}"
        outer, inner = f"twv{self.tag}{index}a", f"twv{self.tag}{index}b"
        address = f"{SUBNET}.{self.subnet}.{index}"
        _ip("netns", "add", namespace)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", namespace)
        _ip("link", "set", outer, "master", self.bridge, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inner)
        _ip("-n", namespace, "link", "set", inner, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        root = self.base / name
        root.mkdir(parents=True)
        host = Host(namespace, address, root)
        self.hosts.append(host)
        return host

    def __exit__(self, *_: object) -> None:
        for host in self.hosts:
            host.stop()
        for index, host in enumerate(self.hosts, start=2):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", f"twv{self.tag}{index}a")
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.name)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)


Target = tuple[str, int] | str
"""Where a relay forwards: ``(host, port)`` or a unix socket path."""


class Relay:
    """A TCP listener on the bridge that forwards every connection to ``target`` (byte for byte)."""

    def __init__(self, listen: tuple[str, int], target: Target) -> None:
        self.target = target
        self._server = socket.create_server(listen, reuse_port=False)
        self.address = self._server.getsockname()[:2]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.target)
            return sock
        return socket.create_connection(self.target)

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = self._connect()
        except OSError:
            client.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            client.close()
            upstream.close()

    def _accept(self) -> None:
        self._server.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._pipe, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def __enter__(self) -> Relay:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._server.close()
        for thread in self._threads:
            thread.join(timeout=2)


@contextlib.contextmanager
def relays(pairs: Sequence[tuple[tuple[str, int], Target]]) -> Iterator[list[Relay]]:
    """Run one :class:`Relay` per ``(listen, target)`` pair for the block."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Relay(listen, target)) for listen, target in pairs]

"""Loopback TCP stand-ins for a network that fails: a proxy that can freeze, a silent server.

Both run on OS threads of the test process, which is never monkey-patched, and are steered
by the scenario scripts (greenlets in another process) over a control socket, one command
a line: ``freeze`` holds every byte in both directions, ``thaw`` lets them through again,
``count`` answers how many connections are open through the proxy. Each answers ``ok`` (or
the count). A connection closed at either end is closed at the other at once, frozen or not,
and under ``freeze`` PostgreSQL's cancel requests still pass: what freezes is the network
under the pool's round trips, not the server's ability to hear that a client gave up. The
proxy recognises a cancel request by its first packet, so clients must not ask for
encryption first (``sslmode=disable``), as libpq 17's cancel connections otherwise do.
``freeze-all SECONDS`` is a partition: new connections, cancel requests included, are
accepted and then held too, and everything thaws by itself after SECONDS (a process frozen
by a blocked cancel could not send ``thaw``).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

# The first packet of a cancel request: length 16, then the code 80877102.
_CANCEL_REQUEST = struct.pack("!ii", 16, 80877102)
# The end of a connection, as poll() reports it even while unread bytes wait in the socket.
# PyPy's select module doesn't name POLLRDHUP (Linux's 0x2000).
_HANGUPS = getattr(select, "POLLRDHUP", 0x2000) | select.POLLHUP | select.POLLERR


class _Listener:
    """A loopback listening socket whose connections are served on threads."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed.set()
        self._sock.close()


class FreezableProxy(_Listener):
    """Forward loopback connections to a PostgreSQL server, until told to freeze."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._frozen = threading.Event()
        # Under freeze-all: new connections are held too, cancel requests included.
        self._partitioned = threading.Event()
        self._thaw_timer: threading.Timer | None = None
        self._open = 0
        self._lock = threading.Lock()
        super().__init__()
        self.control = _Control(self)

    def freeze(self) -> None:
        self._frozen.set()

    def freeze_all(self, seconds: float) -> None:
        self._partitioned.set()
        self._frozen.set()
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
        self._thaw_timer = threading.Timer(seconds, self.thaw)
        self._thaw_timer.daemon = True
        self._thaw_timer.start()

    def thaw(self) -> None:
        self._partitioned.clear()
        self._frozen.clear()

    @property
    def open(self) -> int:
        with self._lock:
            return self._open

    def serve(self, client: socket.socket) -> None:
        if not self._held_until_thawed(client):
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open += 1
        try:
            self._pump(client, upstream)
        finally:
            with self._lock:
                self._open -= 1
            client.close()
            upstream.close()

    def _held_until_thawed(self, client: socket.socket) -> bool:
        """Hold a new connection, unread, while partitioned; False if the client gave up."""
        poller = select.poll()
        poller.register(client, _HANGUPS)
        while self._partitioned.is_set():
            if poller.poll(10):
                return False
        return True

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        # A cancel request passes before anything can freeze it.
        first = _recv_exactly(client, len(_CANCEL_REQUEST))
        if first is None:
            return
        upstream.sendall(first)
        cancel = first == _CANCEL_REQUEST
        poller = select.poll()
        for sock in peers:
            poller.register(sock, select.POLLIN | _HANGUPS)
        by_fd = {sock.fileno(): sock for sock in peers}
        while True:
            events = poller.poll(10)
            frozen = self._frozen.is_set() and (not cancel or self._partitioned.is_set())
            for fd, event in events:
                if event & _HANGUPS:
                    # Closed at one end, or shut down: even with bytes held, the other end
                    # hears it now.
                    return
                if frozen:
                    continue
                sock = by_fd[fd]
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peers[sock].sendall(data)
            if frozen and events:
                # Bytes held: poll would answer at once, again and again.
                time.sleep(0.005)


class SilentServer(_Listener):
    """Accept connections and never answer: a host that hangs every connect."""

    def __init__(self) -> None:
        self._held: list[socket.socket] = []
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        # Kept open, never read: the client's startup packet is never answered.
        self._held.append(conn)

    def close(self) -> None:
        super().close()
        for conn in self._held:
            conn.close()


class _Control(_Listener):
    def __init__(self, proxy: FreezableProxy) -> None:
        self._proxy = proxy
        super().__init__()

    def serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rw") as stream:
            for line in stream:
                command = line.strip()
                if command == "freeze":
                    self._proxy.freeze()
                    answer = "ok"
                elif command == "thaw":
                    self._proxy.thaw()
                    answer = "ok"
                elif command.startswith("freeze-all "):
                    self._proxy.freeze_all(float(command.split()[1]))
                    answer = "ok"
                elif command == "count":
                    answer = str(self._proxy.open)
                else:
                    answer = f"unknown command {command!r}"
                stream.write(answer + "\n")
                stream.flush()


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return data or None
        data += chunk
    return data


@contextlib.contextmanager
def freezable_proxy(host: str, port: int) -> Iterator[FreezableProxy]:
    proxy = FreezableProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.control.close()
        proxy.close()

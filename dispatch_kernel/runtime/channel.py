"""Length-prefixed pickle messages over a stream socket, with deadlines.

Each end says how it reads: a worker unpickles what its host sends (jobs carry any picklable
argument), the host reads a worker's answers with protocol.load_answer, which rebuilds nothing
but the answer types.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import time
from typing import Any, Callable

from .spin import PREEMPTED_GAP, Spin

_HEADER = struct.Struct("!I")
_MAX_MESSAGE = 1 << 31


class ChannelClosed(EOFError):
    """The other end closed the channel (its process ended)."""


class Channel:
    """One end of a message stream between the host and a worker."""

    def __init__(self, sock: socket.socket, loads: Callable[[Any], Any] = pickle.loads) -> None:
        self.sock = sock
        self._loads = loads
        self._buffer = bytearray()

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self.sock.fileno()

    def send(self, message: Any) -> None:
        """Send one message: any value pickle takes, else any value cloudpickle takes."""
        try:
            data = pickle.dumps(message, protocol=5)
        except Exception:
            import cloudpickle  # lambdas and classes defined in a notebook, say

            data = cloudpickle.dumps(message, protocol=5)
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def send_bytes(self, data: bytes) -> None:
        """Send one message that is already pickled."""
        self.sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self, deadline: float | None = None, spin: Spin | None = None, polite: bool = False) -> Any:
        """The next message; TimeoutError at `deadline` (time.monotonic()), ChannelClosed on EOF.

        With a `spin` the socket may be polled a while before the thread sleeps (the Spin
        decides how long, and learns from what this wait saw). `polite` yields the CPU between
        polls, so a spin never keeps runnable work waiting.
        """
        buffer = self._buffer
        sock = self.sock
        began = time.monotonic() if spin is not None else 0.0
        budget = spin.budget(began) if spin is not None else 0.0
        try:
            while True:
                if len(buffer) >= 4:
                    (size,) = _HEADER.unpack_from(buffer)
                    if size >= _MAX_MESSAGE:
                        raise ChannelClosed("corrupt message header")
                    end = 4 + size
                    if len(buffer) >= end:
                        with memoryview(buffer) as view:
                            message = self._loads(view[4:end])
                        del buffer[:end]
                        return message
                chunk = None
                if budget:
                    chunk = self._poll(spin, began + budget, polite)
                    budget = 0.0
                if chunk is None:
                    if deadline is None:
                        sock.settimeout(None)
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise TimeoutError("no message before the deadline")
                        sock.settimeout(remaining)
                    try:
                        chunk = sock.recv(1 << 16)
                    except socket.timeout:
                        raise TimeoutError("no message before the deadline") from None
                    except ConnectionResetError:
                        chunk = b""
                if not chunk:
                    raise ChannelClosed("the other end closed the channel")
                buffer += chunk
        finally:
            if spin is not None:
                spin.waited(time.monotonic() - began)

    def _poll(self, spin: Spin, until: float, polite: bool) -> bytes | None:
        """Poll the socket until `until`; what it read, or None when nothing came (or the
        thread lost the CPU: then sleeping is cheaper than polling on)."""
        sock = self.sock
        sock.setblocking(False)
        try:
            last = time.monotonic()
            while True:
                try:
                    chunk = sock.recv(1 << 16)
                except BlockingIOError:
                    chunk = None
                now = time.monotonic()
                if now - last > PREEMPTED_GAP:
                    spin.preempted(now)
                    return chunk
                if chunk is not None:
                    spin.undisturbed()
                    return chunk
                if now >= until:
                    spin.undisturbed()
                    return None
                if polite:
                    os.sched_yield()
                last = now
        except ConnectionResetError:
            return b""
        finally:
            # Blocking again, whatever the spin found: a sendall on a non-blocking socket
            # stops partway through a large message.
            sock.setblocking(True)

    def close(self) -> None:
        """Close this end."""
        self.sock.close()

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

    def recv(self, deadline: float | None = None, spin: float = 0.0, polite: bool = False) -> Any:
        """The next message; TimeoutError at `deadline` (time.monotonic()), ChannelClosed on EOF.

        With `spin` > 0 the socket is polled for that many seconds before the thread sleeps:
        waking a sleeping thread costs tens of microseconds on a VM, and hundreds when its
        virtual CPU has gone idle, more than a short spin when the message is due soon.
        `polite` yields the CPU between polls, so a spin never keeps runnable work waiting.
        """
        buffer = self._buffer
        sock = self.sock
        spin_until = time.monotonic() + spin if spin else 0.0
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
            if spin_until:
                sock.setblocking(False)
                try:
                    while True:
                        try:
                            chunk = sock.recv(1 << 16)
                            break
                        except BlockingIOError:
                            if time.monotonic() >= spin_until:
                                spin_until = 0.0
                                break
                            if polite:
                                os.sched_yield()
                except ConnectionResetError:
                    chunk = b""
                finally:
                    # Blocking again, whatever the spin found: a sendall on a non-blocking
                    # socket stops partway through a large message.
                    sock.setblocking(True)
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

    def close(self) -> None:
        """Close this end."""
        self.sock.close()

"""A plain (blocking-API) zmq socket driven by the asyncio event loop.

pyzmq's zmq.asyncio wraps every send and receive in its own future and re-arms the loop's
reader for each one: measured here, that machinery cost more CPU per small message than
everything else a storage node does with it (a node spent 0.65 ms of CPU per 4 KiB record read).
This module does what it does with none of that: it watches the socket's file descriptor,
drains every queued message on each wake-up with non-blocking receives, and sends without
blocking, so a message costs one Python call on each side.

zmq's descriptor is edge-triggered: it signals only when the socket's state *changes*, and a
send or receive may consume that change. So after every send (and when reading resumes) the
socket is pumped once more on the next loop turn, and each pump drains until zmq reports
nothing left (or yields after a batch, for fairness with the rest of the loop).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable, Sequence

import zmq

PUMP_BATCH = 64             # messages per loop turn before the pump yields to other callbacks


class LoopSocket:
    """Owns the loop's reader for one zmq socket; `on_message` gets every received message as
    zmq frames (not copies: a shard's bytes reach their destination without one)."""

    def __init__(self, sock: zmq.Socket, on_message: Callable[[list[zmq.Frame]], None]) -> None:
        self._sock = sock
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._fd = sock.getsockopt(zmq.FD)
        self._send_waiters: deque[asyncio.Future] = deque()
        self._pump_scheduled = False
        self._paused = False
        self._closed = False
        self._loop.add_reader(self._fd, self._pump)
        self._schedule_pump()       # messages may already be queued

    @property
    def socket(self) -> zmq.Socket:
        return self._sock

    def close(self) -> None:
        """Stop watching the socket (closing it stays with its owner)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        while self._send_waiters:
            waiter = self._send_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._schedule_pump()

    def try_send(self, frames: Sequence[bytes | memoryview | zmq.Frame]) -> bool:
        """Queue one multipart message without blocking; False if zmq cannot take it now (high
        water mark reached, or no connection yet on a socket with IMMEDIATE set)."""
        if self._closed:
            raise zmq.ZMQError(zmq.ENOTSOCK, "socket is no longer served")
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        self._schedule_pump()
        return True

    async def send(self, frames: Sequence[bytes | memoryview | zmq.Frame], deadline: float) -> None:
        """Queue one message, waiting for room until `deadline` (loop time): TimeoutError."""
        while not self.try_send(frames):
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                raise TimeoutError
            waiter = self._loop.create_future()
            self._send_waiters.append(waiter)
            # zmq gives no edge when a connection completes, so poll now and then as well.
            timer = self._loop.call_later(min(remaining, 0.05), _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                if self._closed:
                    raise zmq.ZMQError(zmq.ENOTSOCK, "socket is no longer served")

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and not self._closed:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self._closed:
            return
        sock = self._sock
        for _ in range(PUMP_BATCH):
            events = sock.getsockopt(zmq.EVENTS)
            if events & zmq.POLLOUT and self._send_waiters:
                while self._send_waiters:
                    _resolve(self._send_waiters.popleft())
            if not events & zmq.POLLIN or self._paused:
                return
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_message(frames)
            if self._closed:
                return
        self._schedule_pump()           # more may be queued: carry on after other callbacks


def _resolve(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)

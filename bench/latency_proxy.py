"""A TCP proxy on loopback that delays every byte by a chosen time each way: a database "far away".

    python -m bench.latency_proxy --target-port 54322 --delay-ms 25 [--seconds 600]

It listens on 127.0.0.1 only and forwards to a loopback target only, and it stops by itself
after `--seconds` (the benches use it as a context manager and stop it sooner). Every chunk
read from one side is written to the other `delay` seconds later, in order, so each request
and each reply pays the delay (a round trip costs twice it) while the bandwidth stays the
loopback's.

It also counts round trips: a turn is a burst of client bytes sent after the server has
answered (or the first of a connection), so a query answered in one reply is one turn, a
pipeline of several queries is one turn, and a connection's start-up (password exchange
included) is a few.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

MAX_LIFETIME_SECONDS = 3600.0
READ_SIZE = 65536


@dataclass
class Counts:
    """What went through the proxy since it started (or since `reset`)."""

    connections: int = 0
    turns: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ValueError(f"the latency proxy only forwards on loopback, not to {host!r}")


class LatencyProxy:
    """Run in a thread of its own: `with LatencyProxy(5432, delay=0.025) as proxy: ... proxy.port`."""

    def __init__(
        self,
        target_port: int,
        *,
        delay: float,
        target_host: str = "127.0.0.1",
        lifetime: float = 600.0,
    ) -> None:
        _require_loopback(target_host)
        if not 0 <= delay <= 1:
            raise ValueError(f"delay: expected 0 to 1 seconds each way, got {delay}")
        if not 0 < lifetime <= MAX_LIFETIME_SECONDS:
            raise ValueError(f"lifetime: expected up to {MAX_LIFETIME_SECONDS:g} seconds, got {lifetime}")
        self.target = (target_host, target_port)
        self.delay = delay
        self.lifetime = lifetime
        self.port = 0
        self._counts = Counts()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- counting ---------------------------------------------------------------------------
    def counts(self) -> Counts:
        with self._lock:
            return Counts(**vars(self._counts))

    def reset(self) -> Counts:
        """The counts so far, and start again from zero."""
        with self._lock:
            counts, self._counts = self._counts, Counts()
            return counts

    def _add(self, *, connections: int = 0, turns: int = 0, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self._counts.connections += connections
            self._counts.turns += turns
            self._counts.bytes_up += up
            self._counts.bytes_down += down

    # --- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> LatencyProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RuntimeError(f"latency proxy did not start: {self._error}") from self._error
        if not self.port:
            raise RuntimeError("latency proxy did not start within 10 s")

    def wait(self) -> None:
        """Until the proxy stops (its lifetime is over, or `stop` from another thread)."""
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stopped already
                self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(), or ends the thread quietly after it
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        connections: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await self._forward_connection(reader, writer)
            except asyncio.CancelledError:
                pass  # stopped with the connection still open
            finally:
                connections.discard(task)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            # Bounded: it ends by itself when its lifetime is over, whoever forgot to stop it.
            await asyncio.wait_for(self._stopped.wait(), timeout=self.lifetime)
        except TimeoutError:
            print(f"latency proxy: stopped after its lifetime ({self.lifetime:g} s)", file=sys.stderr)
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()

    async def _forward_connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._add(connections=1)
        # Who spoke last on this connection: a client burst after the server spoke is a new turn.
        last_speaker = ["server"]

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
            pending: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def deliver() -> None:
                while True:
                    due, data = await pending.get()
                    if not data:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

            delivering = asyncio.create_task(deliver())
            try:
                while True:
                    data = await reader.read(READ_SIZE)
                    if upstream and data and last_speaker[0] == "server":
                        self._add(turns=1)
                    if data:
                        last_speaker[0] = "client" if upstream else "server"
                        self._add(up=len(data)) if upstream else self._add(down=len(data))
                    pending.put_nowait((time.monotonic() + self.delay, data))
                    if not data:
                        break
                await delivering
            finally:
                delivering.cancel()

        try:
            await asyncio.gather(
                pump(client_reader, server_writer, upstream=True),
                pump(server_reader, client_writer, upstream=False),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                writer.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_proxy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-port", type=int, required=True, help="the local PostgreSQL's port")
    parser.add_argument("--target-host", default="127.0.0.1", help="a loopback address")
    parser.add_argument("--delay-ms", type=float, default=25.0, help="added each way (a round trip pays twice)")
    parser.add_argument(
        "--seconds", type=float, default=600.0, help=f"stops by itself after this (at most {MAX_LIFETIME_SECONDS:g})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    proxy = LatencyProxy(
        args.target_port, delay=args.delay_ms / 1000, target_host=args.target_host, lifetime=args.seconds
    )
    with proxy:
        print(
            f"127.0.0.1:{proxy.port} -> {args.target_host}:{args.target_port}, +{args.delay_ms:g} ms each way; "
            f"stops after {args.seconds:g} s (Ctrl-C sooner)",
            file=sys.stderr,
        )
        try:
            proxy.wait()
        except KeyboardInterrupt:
            pass
    counts = proxy.counts()
    print(f"connections {counts.connections}, round trips {counts.turns}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

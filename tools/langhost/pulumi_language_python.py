"""A small Python language host for machines that cannot build Pulumi's own.

The real `pulumi-language-python` is a Go module that the Go proxy here does not
serve (see README, "Toolchain"). This host runs a Pulumi Python program the way
the Automation API runs inline programs: it reuses the SDK's own
`LanguageServer` and only adds what a project program needs (finding and
running `__main__.py`), and `RunPlugin`, which the engine uses to start a Python policy
pack (`pulumi preview --policy-pack policy`). A real language host found on PATH is always
preferred.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import queue
import runpy
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import IO, Any

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2


class ProjectProgramHost(LanguageServer):
    """Runs the project's entry point (a directory with __main__.py, or a file)."""

    def __init__(self) -> None:
        super().__init__(program=self._run_entry_point)
        self._entry_point = ""

    def Run(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC method name)
        directory = request.info.program_directory or request.pwd or os.getcwd()
        entry = request.info.entry_point or request.program or "."
        os.chdir(directory)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        self._entry_point = os.path.join(directory, entry)
        return super().Run(request, context)

    def _run_entry_point(self) -> None:
        runpy.run_path(self._entry_point, run_name="__main__")

    def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return plugin_pb2.PluginInfo(version=importlib.metadata.version("pulumi"))

    def RunPlugin(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        """Runs a plugin written in Python (a policy pack) and streams its output, then its exit code.

        Like Pulumi's own host: `python <program directory> <args>` in the request's working
        directory and environment, with the `virtualenv` runtime option's Python when set.
        """
        python = plugin_python(request.info, context)
        program = os.path.join(request.info.program_directory, request.info.entry_point or ".")
        # The engine sends its whole environment; an empty list would mean "inherit".
        env = dict(entry.split("=", 1) for entry in request.env if "=" in entry) or dict(os.environ)
        # -u: the engine reads the plugin's port from its first stdout line, so nothing may wait in a buffer.
        process = subprocess.Popen(
            [python, "-u", program, *request.args],
            cwd=request.pwd or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # The engine stops a plugin by cancelling this call; the plugin must not outlive it.
        context.add_callback(lambda: stop_process(process))
        chunks: queue.Queue[tuple[str, bytes]] = queue.Queue()
        for stream_name, stream in (("stdout", process.stdout), ("stderr", process.stderr)):
            assert stream is not None
            threading.Thread(target=pump, args=(stream_name, stream, chunks), daemon=True).start()
        open_streams = 2
        while open_streams:
            stream_name, data = chunks.get()
            if not data:
                open_streams -= 1
                continue
            if stream_name == "stdout":
                yield language_pb2.RunPluginResponse(stdout=data)
            else:
                yield language_pb2.RunPluginResponse(stderr=data)
        yield language_pb2.RunPluginResponse(exitcode=process.wait())


def plugin_python(info: Any, context: Any) -> str:
    """The `virtualenv` runtime option's Python (relative to the plugin's root), else this host's Python."""
    if "virtualenv" not in info.options:
        return sys.executable
    virtualenv = os.path.join(info.root_directory, str(info.options["virtualenv"]))
    python = os.path.join(virtualenv, "bin", "python")
    if not os.path.exists(python):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"virtualenv {virtualenv} has no bin/python")
    return python


def pump(stream_name: str, stream: IO[bytes], chunks: queue.Queue[tuple[str, bytes]]) -> None:
    """Copies a pipe into `chunks` as it arrives; an empty chunk marks its end."""
    while data := stream.read1(65536):  # type: ignore[attr-defined]
        chunks.put((stream_name, data))
    chunks.put((stream_name, b""))


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Interrupt first (a policy pack stops its server on KeyboardInterrupt), then kill."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine_address", nargs="?", default="")
    # The engine passes flags meant for the Go host (-root, -tracing, ...); they do not apply here.
    parser.parse_known_args()
    # Each running plugin holds a worker for its whole life (RunPlugin streams), next to Run.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProjectProgramHost(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The engine reads the port from the first line of stdout.
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        # The engine interrupts its plugins when it is done (or gives up): a normal end. A program
        # still running in a worker thread must not keep the process alive until the engine kills it.
        # Cancelling the calls stops running plugins (RunPlugin's callback) before we go.
        server.stop(grace=None).wait(timeout=6)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()

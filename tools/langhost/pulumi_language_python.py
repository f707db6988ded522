"""A small Python language host for machines that cannot build Pulumi's own.

The real `pulumi-language-python` is a Go module that the Go proxy here does not
serve (see README, "Toolchain"). This host runs a Pulumi Python program the way
the Automation API runs inline programs: it reuses the SDK's own
`LanguageServer` and only adds what a project program needs (finding and
running `__main__.py`). A real language host found on PATH is always preferred.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import runpy
import sys
from concurrent import futures
from typing import Any

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2_grpc, plugin_pb2


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("engine_address", nargs="?", default="")
    # The engine passes flags meant for the Go host (-root, -tracing, ...); they do not apply here.
    parser.parse_known_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProjectProgramHost(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The engine reads the port from the first line of stdout.
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        # The engine interrupts its plugins when it is done: a normal end.
        server.stop(grace=None)


if __name__ == "__main__":
    main()

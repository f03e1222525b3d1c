"""Running the app: ``serve`` for ``pixdex serve``; ``BackgroundServer`` to run it in a thread on
a free port (tests drive it with a real browser or SDK; embedding applications can too)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from pixdex.config import Settings, load_settings


def serve(
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> None:
    """Block serving the API and gallery. Refuses (BindError) an address beyond loopback without
    an API token. Behind a reverse proxy, uvicorn's proxy headers handling applies as usual."""
    from pixdex import memory
    from pixdex.api.app import create_app
    from pixdex.api.guard import check_bind

    settings = settings or load_settings()
    check_bind(host, settings.serve.api_token)
    memory.limit_arenas()  # before uvicorn and the thread pool start their threads
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        # Bounded request line/headers and a cap on concurrent connections (each holds memory).
        h11_max_incomplete_event_size=64 * 1024,
        limit_concurrency=512,
        timeout_keep_alive=5,
    )


class BackgroundServer:
    """uvicorn in a daemon thread on ``host`` and a free port; ``url`` once entered."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", start_timeout: float = 20.0) -> None:
        self.app = app
        self.host = host
        self.start_timeout = start_timeout
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BackgroundServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))  # the kernel picks a free port; no race with a probe
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="pixdex-http"
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server did not start on {self.host}:{port}")
            time.sleep(0.02)
        self.url = f"http://{self.host}:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

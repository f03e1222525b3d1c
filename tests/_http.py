"""HTTP test clients for the app as a client on this machine reaches it."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


class LocalClient(TestClient):
    """A TestClient whose requests carry ``Host: 127.0.0.1``: the server answers only to the
    names in its Host allowlist (loopback by default, against DNS rebinding), and TestClient's
    default host, ``testserver``, is not one of them."""

    def __init__(self, app: Any, base_url: str = "http://127.0.0.1", **kwargs: Any) -> None:
        super().__init__(app, base_url=base_url, **kwargs)

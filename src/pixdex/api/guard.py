"""The server's front door: who may talk to it, from where, and how much they may send.

One pure ASGI middleware (no BaseHTTPMiddleware: bodies and streamed files pass through
untouched) checks every HTTP request before any route runs, in this order:

1. **Host allowlist** against DNS rebinding: a web page on ``evil.example`` whose name is made to
   resolve to 127.0.0.1 sends ``Host: evil.example`` — refused (400). Allowed: loopback names
   (``localhost``, ``127.0.0.1``, ``::1``, ``*.localhost``), any IP literal (a rebinding attack
   needs a *name*), and the names in ``serve.allowed_hosts`` (``*`` allows every name).
2. **Body caps per route**, from ``Content-Length`` before anything is read (413), and again while
   the body streams in (a chunked upload that lies or says nothing is cut at the cap).
3. **No state change from another site**: a POST/PUT/PATCH/DELETE with ``Sec-Fetch-Site:
   cross-site|same-site``, or an ``Origin`` that is not this very host, is refused (403); so is a
   body a plain HTML form or ``fetch`` can send without a CORS preflight (``text/plain``,
   form-encoded, multipart): 415, "send JSON".
4. **API token** (``serve.api_token``): when set, every request needs it — ``Authorization: Bearer
   <token>``, or ``?token=<token>`` (for a browser: the answer then sets an HttpOnly,
   SameSite=Strict cookie, so the gallery's own requests and images carry it). Compared in
   constant time. ``pixdex serve`` refuses to bind beyond loopback without one (``check_bind``).

The MinIO webhook authenticates with its own token (``s3.webhook_token``: the s3 integration's
``webhook``) and is exempt from 1 and 4 (MinIO calls it by whatever name it was configured
with); ``/healthz`` is exempt from 4 so that probes need no secret, and says nothing but "ok"
and a count.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdex import memory
from pixdex.config import Settings
from pixdex.errors import BindError

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Bodies a cross-site form or no-preflight fetch can send; JSON APIs never need them.
FORM_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
COOKIE = "pixdex_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

KiB = 1024
MiB = 1024 * KiB
#: Body caps by path prefix (first match wins). Rekognition's route checks its own, tighter
#: limit (5 MB image as base64) with Rekognition's error names; this is the backstop.
BODY_CAPS: tuple[tuple[str, int], ...] = (
    ("/rekognition", 8 * MiB),
    ("/api/similar", 20 * MiB),  # a photo to search by example, as its bytes
    ("/webhooks/minio", 256 * KiB),  # MinIO posts one event (~2 KB) per request
)
DEFAULT_BODY_CAP = 64 * KiB  # everything else is GET or a small JSON body
#: Paths exempt from the Host check and the API token (they authenticate otherwise / say little).
OWN_AUTH = ("/webhooks/minio",)
NO_TOKEN = ("/webhooks/minio", "/healthz")
#: Routes after which freed memory is handed back to the OS (big decodes happen there).
HEAVY = ("/rekognition", "/api/images/", "/api/similar", "/api/duplicates")


def _strip_port(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host  # a bare IPv6 address, or a name without port


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_token: str | None) -> None:
    """BindError unless ``host`` is loopback or an API token is configured."""
    if is_loopback(host) or api_token:
        return
    raise BindError(
        f"refusing to serve on {host}: beyond this machine every request must carry an API "
        "token; set one with --api-token, PIXDEX_SERVE__API_TOKEN or api_token in the [serve] "
        "section of the config file (docs/security.md), or serve on 127.0.0.1"
    )


@dataclass(frozen=True)
class GuardPolicy:
    token: str | None = None
    hosts: frozenset[str] = LOOPBACK_NAMES
    any_host: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardPolicy:
        names = {h.strip().lower() for h in settings.serve.allowed_hosts if h.strip()}
        return cls(
            token=settings.serve.api_token or None,
            hosts=frozenset(LOOPBACK_NAMES | {_strip_port(n) for n in names if n != "*"}),
            any_host="*" in names,
        )

    def host_allowed(self, host_header: str) -> bool:
        host = _strip_port(host_header)
        if not host:
            return False
        return self.any_host or host in self.hosts or is_ip(host) or host.endswith(".localhost")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its cap; answered as 413."""

    def __init__(self, cap: int) -> None:
        super().__init__(413, f"request body over {cap:,} bytes (the limit for this route)")


def body_cap(path: str) -> int:
    for prefix, cap in BODY_CAPS:
        if path.startswith(prefix):
            return cap
    return DEFAULT_BODY_CAP


def _headers(scope: Scope) -> dict[str, str]:
    """Header name → value (last one wins; latin-1 as HTTP/1.1 defines)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _tokens(scope: Scope, headers: dict[str, str]) -> Iterable[tuple[str, str]]:
    """(form, value) of every token the request carries."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        yield "header", auth[7:].strip()
    for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if name == "token":
            yield "query", value
    if "cookie" in headers:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers["cookie"])
        except Exception:  # noqa: BLE001 - a malformed cookie header carries no token
            return
        if COOKIE in cookie:
            yield "cookie", cookie[COOKIE].value


def token_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


class Guard:
    """The middleware; see the module docstring. ``error`` builds refusals as JSON."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        headers = _headers(scope)
        refusal = self._check(scope, path, method, headers)
        if refusal is not None:
            await _refuse(send, path, *refusal)
            return
        set_cookie = self._cookie_to_set(scope, method, headers) if self.policy.token else None

        cap = body_cap(path)
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge(cap)
            return message

        async def send_with_cookie(message: Message) -> None:
            if set_cookie and message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", set_cookie)],
                }
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_cookie)
        finally:
            if path.startswith(HEAVY):
                memory.release_soon()

    def _check(
        self, scope: Scope, path: str, method: str, headers: dict[str, str]
    ) -> tuple[int, str] | None:
        """(status, reason) when the request is refused, None when it may pass."""
        own_auth = path.startswith(OWN_AUTH)
        host = headers.get("host", "")
        if not own_auth and not self.policy.host_allowed(host):
            return 400, (
                f"Host {host[:100]!r} is not allowed: add it to serve.allowed_hosts "
                "(PIXDEX_ALLOWED_HOSTS) if this server is meant to answer to that name"
            )
        declared = headers.get("content-length", "")
        cap = body_cap(path)
        if declared.isdigit() and int(declared) > cap:
            return 413, f"request body is {int(declared):,} bytes; the limit here is {cap:,}"
        if method in UNSAFE_METHODS:
            site = headers.get("sec-fetch-site", "").lower()
            if site in ("cross-site", "same-site"):
                return 403, f"cross-site request refused (Sec-Fetch-Site: {site})"
            origin = headers.get("origin")
            if origin is not None:
                netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
                if not netloc or netloc != host.lower():
                    return 403, f"cross-site request refused (Origin {origin[:100]!r})"
            media = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media in FORM_TYPES:
                return 415, f"{media} bodies are refused: send JSON (application/json)"
        if self.policy.token and not path.startswith(NO_TOKEN):
            given = [value for _, value in _tokens(scope, headers)]
            if not any(token_matches(self.policy.token, value) for value in given):
                what = "wrong API token" if given else "API token required"
                return 401, (
                    f"{what}: send Authorization: Bearer <token>, or open ?token=<token> once "
                    "in a browser"
                )
        return None

    def _cookie_to_set(self, scope: Scope, method: str, headers: dict[str, str]) -> bytes | None:
        """A session cookie when a browser brought the token in the query string."""
        assert self.policy.token is not None
        if method != "GET":
            return None
        for form, value in _tokens(scope, headers):
            if form == "query" and token_matches(self.policy.token, value):
                secure = "; Secure" if scope.get("scheme") == "https" else ""
                return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}".encode(
                    "latin-1", "replace"
                )
        return None


_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "too_large"}
# The same refusals in Rekognition's error shape, so AWS SDKs raise their usual exceptions.
_REKOGNITION_KINDS = {
    400: "InvalidParameterException",
    401: "AccessDeniedException",
    403: "AccessDeniedException",
    413: "ImageTooLargeException",
    415: "InvalidParameterException",
}


async def _refuse(send: Send, path: str, status: int, message: str) -> None:
    headers = [(b"content-type", b"application/json")]
    if path.startswith("/rekognition"):
        kind = _REKOGNITION_KINDS.get(status, "InvalidParameterException")
        body: dict[str, Any] = {"__type": kind, "Message": message}
        headers = [(b"content-type", b"application/x-amz-json-1.1"), (b"x-amzn-errortype", kind)]
    else:
        body = {"error": _KINDS.get(status, "unsupported_media_type"), "message": message}
        body["status"] = status
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    data = json.dumps(body).encode()
    headers.append((b"content-length", str(len(data)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})

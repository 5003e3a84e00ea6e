"""What keeps other web sites out of a local ``masklab serve``: ASGI middleware that

- answers only requests whose ``Host`` names the server: the ``--host`` it was bound to, plus ``localhost``,
  ``127.0.0.1`` and ``[::1]`` when it is bound locally (or to every address), with or without the port (the bound
  one, when known). A server bound to every address (``0.0.0.0``, ``::``) also answers to this machine's names and
  to the IP address each request arrived on (a name is what rebinding abuses; an address literal cannot be
  rebound). Anything else is a JSON 400 naming ``Host``: a page on ``evil.example.com`` whose name was
  rebound to 127.0.0.1 (DNS rebinding) cannot read the runs or the user's held-out images;
- refuses a POST whose ``Origin`` header is present and not one of those origins with a JSON 403 naming
  ``Origin``: a cross-site form (urlencoded / multipart, sent by browsers without a preflight) cannot run a
  model. The page's own ``fetch`` calls send its origin, which is allowed; clients without ``Origin`` (curl,
  scripts) are not affected;
- adds ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy to every answer (the page loads its own
  scripts and stylesheet only, no inline code; pictures travel as ``data:`` / ``blob:`` URLs).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from masklab.serve.errors import error_body

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")  # fmt: skip
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"content-security-policy", CSP.encode())]
_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_V6 = re.compile(r"[0-9a-f:.]+")


def server_names(host: str) -> tuple[str, ...]:
    """The names a server bound to ``host`` answers to (lower case, IPv6 without brackets)."""
    bound = host.strip().strip("[]").lower()
    names = [bound] if bound not in WILDCARDS else []
    if bound in WILDCARDS or bound in LOCAL_NAMES or bound.startswith("127."):
        names += [n for n in LOCAL_NAMES if n not in names]
    if bound in WILDCARDS:  # every address of this machine: its own names reach it too
        names += [n.lower() for n in {socket.gethostname(), socket.getfqdn()} if n and n.lower() not in names]
    return tuple(names)


def split_host(value: str) -> tuple[str, int | None] | None:
    """``name``, ``name:port``, ``[v6]``, ``[v6]:port`` -> (name in lower case, port or None); None when it is
    not one of those."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or not _V6.fullmatch(name):
            return None
    else:
        name, _, port = value.partition(":")
        rest = f":{port}" if ":" in value else ""
        if not _NAME.fullmatch(name):
            return None
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit() or not 0 < int(rest[1:]) < 65536:
        return None
    return name, int(rest[1:])


def _same_address(name: str, arrived: object) -> bool:
    """Whether ``name`` is an IP address literal equal to ``arrived`` (the address a request came in on, as the
    ASGI scope's ``server`` gives it; an IPv4-mapped IPv6 address equals its IPv4 one)."""

    def address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            ip = ipaddress.ip_address(str(value).strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        mapped = getattr(ip, "ipv4_mapped", None)
        return mapped if mapped is not None else ip

    ip = address(name)
    return ip is not None and ip == address(arrived)


def _shown(name: str) -> str:
    return f"[{name}]" if ":" in name else name


class LocalOnly:
    """ASGI middleware: the ``Host`` and ``Origin`` checks and the security headers (see the module doc)."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.app = app
        self.names = server_names(host)
        self.port = port
        self.wildcard = host.strip().strip("[]").lower() in WILDCARDS

    def _known(self, name: str, scope: Scope) -> bool:
        """``name`` is one of the server's names, or (bound to every address) the address the request came in on."""
        if name in self.names:
            return True
        server = scope.get("server")
        return self.wildcard and server is not None and _same_address(name, server[0])

    def _host_ok(self, value: str, scope: Scope) -> bool:
        parsed = split_host(value)
        return parsed is not None and self._known(parsed[0], scope) and parsed[1] in (None, self.port or parsed[1])

    def _origin_ok(self, value: str, scope: Scope) -> bool:
        try:
            parts = urlsplit(value)
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.username is not None:
            return False
        return self._known(parts.hostname or "", scope) and (self.port is None or port == self.port)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        where = ", ".join(_shown(n) for n in self.names) + (", this machine's address" if self.wildcard else "")
        where += "" if self.port is None else f" (port {self.port})"
        host = headers.get("host", "")
        if not self._host_ok(host, scope):
            message = (f"the Host header {host[:80]!r} does not name this server, which answers to {where}; open "
                       "the page by one of those names")  # fmt: skip
            return JSONResponse(error_body(message, "Host"), status_code=400)
        origin = headers.get("origin")
        if scope["method"] == "POST" and origin is not None and not self._origin_ok(origin, scope):
            message = (f"a request from the page at {origin[:80]!r} is refused: only this server's own page "
                       f"(served from {where}) may send requests to it")  # fmt: skip
            return JSONResponse(error_body(message, "Origin"), status_code=403)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, with_headers)
            return
        await self.app(scope, receive, with_headers)

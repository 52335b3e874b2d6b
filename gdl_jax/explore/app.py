"""The latent explorer's web app: one static page (page.html) and a JSON API over an Explorer,
on Starlette (the `explore` extra). Every API error is a JSON {"error": message} with status
400 (bad input) or 500 (a bug: logged, and the server keeps serving)."""

from __future__ import annotations

import functools
import json
import logging
import socket
from importlib import resources
from typing import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from gdl_jax.errors import ConfigError, GdlError
from gdl_jax.explore.core import MAX_UPLOAD_BYTES, Explorer

log = logging.getLogger("gdl_jax.explore")


class BadRequest(Exception):
    """A request the API cannot read (not JSON, no file): a 400 with this message."""


def _api(handler: Callable) -> Callable:
    """An endpoint whose GdlErrors (and unreadable request bodies) become 400s with their
    message, and anything else a logged 500."""
    @functools.wraps(handler)
    async def endpoint(request: Request) -> JSONResponse:
        try:
            return JSONResponse(await handler(request))
        except (GdlError, BadRequest) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        except Exception as e:   # a bug: say so on the page, keep serving
            log.exception("explorer request %s failed", request.url.path)
            return JSONResponse({"error": f"internal error ({type(e).__name__}: {e})"}, status_code=500)
    return endpoint


async def _json(request: Request) -> dict:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def create_app(explorer: Explorer) -> Starlette:
    """The app serving `explorer`: GET / (the page), GET /api/info, POST /api/decode {z,
    attributes}, /api/grid {seed}, /api/encode (multipart `file`), /api/pick {index}."""
    page = resources.files("gdl_jax.explore").joinpath("page.html").read_text(encoding="utf-8")
    run = run_in_threadpool   # decoding blocks for milliseconds: off the event loop

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    @_api
    async def info(request: Request) -> dict:
        return await run(explorer.info)

    @_api
    async def decode(request: Request) -> dict:
        body = await _json(request)
        return await run(explorer.decode, body.get("z"), body.get("attributes"))

    @_api
    async def grid(request: Request) -> dict:
        return await run(explorer.grid, (await _json(request)).get("seed"))

    @_api
    async def encode(request: Request) -> dict:
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES + 2**16:
            raise BadRequest(f"the upload is over the {MAX_UPLOAD_BYTES // 2**20} MiB limit")
        try:
            form = await request.form()
        except Exception:
            raise BadRequest("expected a multipart form with an image file in 'file'") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadRequest("expected a multipart form with an image file in 'file'")
        return await run(explorer.encode_upload, await upload.read())

    @_api
    async def pick(request: Request) -> dict:
        return await run(explorer.encode_pick, (await _json(request)).get("index"))

    return Starlette(routes=[
        Route("/", index), Route("/api/info", info), Route("/api/decode", decode, methods=["POST"]),
        Route("/api/grid", grid, methods=["POST"]), Route("/api/encode", encode, methods=["POST"]),
        Route("/api/pick", pick, methods=["POST"]),
    ])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); ConfigError naming the address
    when it cannot listen there."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in [0, 65535], got {port}")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
        sock.listen(64)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e}); "
                          "pick another --port or --host") from None
    return sock


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serves `app` on the bound socket until interrupted (uvicorn, warnings and errors only)."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])

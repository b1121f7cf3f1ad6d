"""The dashboard's HTTP server (aiohttp): the pages, their JSON, ``/metrics``.

Run as ``python -m shoal.dashboard`` (see :mod:`shoal.dashboard.__main__`).  It
is its own process: the pages' queries never run on the head's event loop
except as the ordinary LIST_STATE / CLUSTER_STATUS requests any client makes,
and it exits when its connection to the control store closes (the cluster
stopped).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from aiohttp import web

from shoal.dashboard import auth, logs, metrics, timeline, views
from shoal.dashboard.state_source import StateSource
from shoal.rpc.transport import RemoteError

STATIC = Path(__file__).with_name("static")
SOURCE = web.AppKey("source", StateSource)
TOKEN = web.AppKey("token", str)
LOG_DIRS = web.AppKey("log_dirs", list)


@web.middleware
async def require_token(request: web.Request, handler):
    if auth.is_public(request.path):
        return await handler(request)
    given = auth.presented_token(request.cookies, request.headers)
    if not auth.token_matches(given, request.app[TOKEN]):
        raise web.HTTPUnauthorized(text="the cluster token is required: open / to log in\n")
    return await handler(request)


def _authed(request: web.Request) -> bool:
    return auth.token_matches(auth.presented_token(request.cookies, request.headers),
                              request.app[TOKEN])


async def index(request: web.Request) -> web.FileResponse:
    page = "index.html" if _authed(request) else "login.html"
    return web.FileResponse(STATIC / page, headers={"Cache-Control": "no-store"})


async def login(request: web.Request) -> web.Response:
    """A form post (``token=``) or JSON ``{"token": ...}``; sets the cookie."""
    if request.content_type == "application/json":
        given = (await request.json()).get("token")
    else:
        given = (await request.post()).get("token")
    if not auth.token_matches(str(given or ""), request.app[TOKEN]):
        raise web.HTTPUnauthorized(text="wrong cluster token\n")
    response = (web.json_response({"ok": True}) if request.content_type == "application/json"
                else web.HTTPSeeOther("/"))
    response.set_cookie(auth.COOKIE, request.app[TOKEN], httponly=True, samesite="Strict",
                        path="/")
    return response


async def static(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def api_overview(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    status, tasks = await asyncio.gather(source.status(), source.tasks())
    body = views.overview(status)
    body["tasks"] = views.tasks(tasks)["state_counts"]
    return web.json_response(body)


async def api_tasks(request: web.Request) -> web.Response:
    tasks = await request.app[SOURCE].tasks()
    return web.json_response(views.tasks(tasks, request.query.get("state", ""),
                                         request.query.get("name", "")))


async def api_task(request: web.Request) -> web.Response:
    found = views.task_detail(await request.app[SOURCE].tasks(), request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound(text="no such task (finished tasks are kept for the last "
                                    "SHOAL_TASK_HISTORY per owner)\n")
    return web.json_response(found)


async def api_actors(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    actors, tasks = await asyncio.gather(source.actors(), source.tasks())
    return web.json_response(views.actors(actors, tasks))


async def api_objects(request: web.Request) -> web.Response:
    return web.json_response(views.objects(await request.app[SOURCE].objects()))


async def api_stream(request: web.Request) -> web.Response:
    tasks = await request.app[SOURCE].tasks()
    seconds = float(request.query.get("seconds", views.STREAM_WINDOW_MS / 1000))
    return web.json_response(views.task_stream(tasks, _now_ms(), int(seconds * 1000)))


async def api_shuffle(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    status, tasks = await asyncio.gather(source.status(), source.tasks())
    body = views.shuffle_progress(tasks)
    body["spilled_bytes_total"] = views.overview(status)["totals"]["spilled_bytes_total"]
    return web.json_response(body)


async def api_logs(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    reply, tasks, actors = await asyncio.gather(source.state("logs"), source.tasks(),
                                                source.actors())
    local = logs.list_local(request.app[LOG_DIRS])
    return web.json_response({"logs": logs.log_rows(reply, tasks, actors, local)})


async def api_log(request: web.Request) -> web.Response:
    """``?node=ID&name=NAME&offset=N&max=BYTES``: a chunk of one file (offset -1: its
    tail); node "" is the dashboard's own folder."""
    query = request.query
    name, node = query.get("name", ""), query.get("node", "")
    try:
        offset = int(query.get("offset", "-1"))
        max_bytes = int(query.get("max", str(logs.TAIL_BYTES)))
    except ValueError:
        raise web.HTTPBadRequest(text="offset and max must be integers\n") from None
    if not node:
        chunk = logs.read_local(request.app[LOG_DIRS], name, offset, max_bytes)
    else:
        try:
            chunk = await request.app[SOURCE].read_log(node, name, offset, max_bytes)
        except (RemoteError, LookupError) as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
    if chunk is None:
        raise web.HTTPNotFound(text="no such log\n")
    return web.json_response(logs.chunk_json(chunk))


async def chrome_trace(request: web.Request) -> web.Response:
    tasks = await request.app[SOURCE].tasks()
    return web.Response(text=timeline.dumps(timeline.trace_events(tasks, _now_ms())),
                        content_type="application/json",
                        headers={"Content-Disposition": "attachment; filename=timeline.json"})


async def prometheus(request: web.Request) -> web.Response:
    source = request.app[SOURCE]
    status, tasks, actors, reply = await asyncio.gather(
        source.status(), source.tasks(), source.actors(), source.state("tasks", "actors",
                                                                       "workers"))
    busy = metrics.busy_actor_ids(reply)
    return web.Response(body=metrics.exposition(status, tasks, actors, busy),
                        content_type="text/plain", charset="utf-8")


def make_app(source: StateSource, token: str, log_dirs: list[str]) -> web.Application:
    app = web.Application(middlewares=[require_token])
    app[SOURCE], app[TOKEN], app[LOG_DIRS] = source, token, list(log_dirs)
    app.router.add_get("/", index)
    app.router.add_post("/login", login)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/overview", api_overview)
    app.router.add_get("/api/tasks", api_tasks)
    app.router.add_get("/api/tasks/{id}", api_task)
    app.router.add_get("/api/actors", api_actors)
    app.router.add_get("/api/objects", api_objects)
    app.router.add_get("/api/stream", api_stream)
    app.router.add_get("/api/shuffle", api_shuffle)
    app.router.add_get("/api/logs", api_logs)
    app.router.add_get("/api/log", api_log)
    app.router.add_get("/api/timeline", chrome_trace)
    app.router.add_get("/metrics", prometheus)
    return app


async def serve(control_address: str, token: str, sock: socket.socket,
                log_dirs: list[str]) -> None:
    """Serve on ``sock`` until the control store's connection closes."""
    source = StateSource(control_address, token)
    conn = await source.connect()
    runner = web.AppRunner(make_app(source, token, log_dirs), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        await conn.closed
    finally:
        await runner.cleanup()

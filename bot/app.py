"""The ASGI app: web chat, webhooks, NLU endpoint, health and metrics, on one FastAPI instance."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from bot.booth.screen import booth_router
from bot.channels.webchat import PHOTO_PATH, webchat_router
from bot.logs import configure_logging, secret_values
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from bot.staff.web import install_staff
from bot.web import STATIC_DIR
from bot.web.deps import Readiness, RuntimeDep
from bot.web.http import (
    BodyLimitMiddleware,
    ClientAddressMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    install_error_handlers,
)
from bot.wiring import build_runtime, channel_routers, close_runtime, require_current_schema, start_runtime

logger = logging.getLogger(__name__)


class ParseRequest(BaseModel):
    """Rasa's ``POST /model/parse`` body."""

    text: str = Field(max_length=10_000)
    message_id: str | None = Field(default=None, max_length=128)


def create_app(settings: Settings, *, runtime: Runtime | None = None, **runtime_kwargs: Any) -> FastAPI:
    """The whole HTTP surface; the lifespan opens the runtime (unless one is given) and closes it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:  # built and started by the caller (tests)
            app.state.runtime = runtime
            app.state.readiness = Readiness(waiting=[])
            yield
            return
        # A schema that is not up to date stops the program at once, as before it listened.
        await require_current_schema(settings)
        readiness = app.state.readiness = Readiness()
        app.state.runtime = None
        opening = asyncio.create_task(_open(app, readiness), name="open-runtime")
        try:
            yield
        finally:
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            if app.state.runtime is not None:
                await close_runtime(app.state.runtime)

    async def _open(app: FastAPI, readiness: Readiness) -> None:
        """Build the runtime (training the model if it is stale) while the server already answers
        ``/healthz`` and ``/readyz``; then start its channels and jobs."""
        try:
            # The schema was checked before the server listened: not a second time here.
            rt = await build_runtime(settings, **{"check_schema": False, **runtime_kwargs})
        except Exception as exc:
            logger.exception("pontibot could not start")
            readiness.failed = f"{type(exc).__name__}: {exc}"
            return
        readiness.done("database", "nlu model")
        try:
            await start_runtime(rt)
        except Exception as exc:
            logger.exception("pontibot could not start its channels and jobs")
            readiness.failed = f"{type(exc).__name__}: {exc}"
            await close_runtime(rt)
            return
        # Everything made at start-up (NLU model, texts, knowledge base, libraries: ~200,000
        # objects) lives as long as the process: out of the collector's way, a full collection
        # takes ~20 ms under load instead of ~60 ms, and with a higher last threshold it comes
        # every half minute instead of every 3 s at 300 msgs/s (each is a pause for every
        # request in flight). Not for a runtime handed in: tests start many apps in one process.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 100)
        app.state.runtime = rt
        readiness.done("channels")
        logger.info("pontibot ready on %s", settings.server.public_url)

    app = FastAPI(
        title="pontibot",
        summary="Citizen-service chatbot of Kota Pontianak",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.server.public_url.startswith("https://"))
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        overrides={PHOTO_PATH: settings.server.media_max_bytes + 64_000},
    )
    # Outermost: every part (limits, audit log, access log) sees the real client behind nginx.
    app.add_middleware(ClientAddressMiddleware, trusted=settings.server.forwarded_allow_ips)
    app.add_middleware(RequestIdMiddleware)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(webchat_router())
    app.include_router(booth_router())
    for router in channel_routers():
        app.include_router(router)
    install_staff(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> JSONResponse:
        """Liveness: the process answers (``starting`` until ready), and the database once running."""
        rt: Runtime | None = getattr(request.app.state, "runtime", None)
        if rt is None:
            return JSONResponse({"status": "starting"})
        try:
            await rt.db.ping()
        except Exception:
            logger.warning("health check: database unreachable", exc_info=True)
            return JSONResponse({"status": "degraded", "database": "down"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "up"})

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: 200 once the model, database and channels are ready (and the database answers);
        503 with what it still waits for until then."""
        readiness: Readiness = request.app.state.readiness
        if readiness.failed is not None:
            body = {"ready": False, "waiting": readiness.waiting, "failed": readiness.failed}
            return JSONResponse(body, status_code=503)
        rt: Runtime | None = getattr(request.app.state, "runtime", None)
        if rt is None or readiness.waiting:
            return JSONResponse({"ready": False, "waiting": readiness.waiting}, status_code=503)
        try:
            await rt.db.ping()
        except Exception:
            return JSONResponse({"ready": False, "waiting": ["database"]}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        """The icon browsers ask for on every page (web chat, booth, staff console)."""
        return FileResponse(
            STATIC_DIR / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/metrics", tags=["ops"])
    async def metrics(rt: RuntimeDep) -> Response:
        """Prometheus text: every worker's figures and the database's (``bot.metrics``)."""
        await rt.database_gauges.refresh()
        return Response(rt.metrics.exposition(rt.database_gauges), media_type=CONTENT_TYPE_LATEST)

    @app.post("/model/parse", tags=["nlu"])
    async def model_parse(body: ParseRequest, rt: RuntimeDep) -> dict[str, Any]:
        """Rasa-compatible parse: the same JSON as Rasa's ``POST /model/parse``."""
        return (await rt.parser.parse(body.text)).to_dict()

    return app


def create_app_from_env() -> FastAPI:
    """The app of one worker process (``uvicorn --factory``): settings from $PONTIBOT_CONFIG and the env.

    ``pontibot run --workers N`` passes its options to each worker through the environment; every
    worker builds its own runtime in the lifespan (PostgreSQL coordinates them, DESIGN 8).
    """
    settings = load_settings()
    configure_logging(settings.log_level, secrets=secret_values(settings), fmt=settings.logging.format)
    return create_app(settings)

"""`create_app(settings)`: the FastAPI application. All state hangs off `app.state`, made in lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI

import ember
from ember import registry
from ember.api import errors, log_safety, openapi, request_text
from ember.api.body_limit import BodyLimit
from ember.api.metrics import Metrics
from ember.api.readiness import HealthProbe
from ember.api.routes import (
    audio,
    chat,
    conversations,
    docs,
    embeddings,
    me,
    media,
    models,
    probe,
    responses,
    shopping,
    web,
)
from ember.config import Settings
from ember.policy import privacy
from ember.policy.keys import KeyStore
from ember.policy.limits import Limiter
from ember.services import Services
from ember.serving.admission import Admission
from ember.serving.pipeline import Pipeline
from ember.serving.titles import Titles

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    registry.load_plugins()
    log_safety.install_filters()  # whichever server runs the app logs paths without queries, errors without messages
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await anyio.to_thread.run_sync(Services.open, settings)
        pool, store = services.engines, services.store
        app.state.settings = settings
        app.state.services = services
        titles = Titles(services) if settings.titles else None
        app.state.pipeline = Pipeline(services, metrics, titles)
        app.state.keys = KeyStore(store.db, settings)
        app.state.admission = Admission.of(settings)
        app.state.health = checks = HealthProbe(lambda: probe.probe_engines(pool, settings))  # cached /health
        limiter: Limiter | None = None
        try:
            app.state.limiter = limiter = await Limiter.open(settings)
            if settings.load_on_start:
                roles = [role for mode in models.available_modes(settings) for role in mode.roles]
                await pool.start([*roles, *pool.speech_roles()])
                log.info("engines ready: %s", ", ".join(pool.loaded()))
            async with anyio.create_task_group() as tg:
                tg.start_soon(privacy.keep_purging, store, settings)  # at start, then hourly; idle without retention
                tg.start_soon(services.knowledge.keep_built)  # the health index, if missing: a child process
                if titles is not None:
                    tg.start_soon(titles.keep_writing)  # new conversations' titles, by the fast model
                yield
                tg.cancel_scope.cancel()
        finally:
            await checks.close()
            if limiter is not None:
                await limiter.close()
            await services.aclose()

    # strict_content_type=False: a JSON body is read as JSON even when a client omits the header
    app = FastAPI(
        title="Ember",
        version=ember.__version__,
        lifespan=lifespan,
        strict_content_type=False,
        docs_url=None,  # FastAPI's pages load scripts from a CDN: ours (routes/docs.py) are served from here
        redoc_url=None,
        dependencies=[Depends(request_text.require_text)],  # a lone surrogate or NUL: 400, not a 500 in the store
    )
    errors.install(app)
    openapi.install(app)  # the schema documents the error envelope Ember answers with
    for module in (chat, responses, audio, embeddings, models, conversations, media, me, probe, shopping, docs):
        app.include_router(module.router)
    web.install(app)  # the chat page at / and its files under /web
    app.add_middleware(BodyLimit, limit_for=body_limit(settings))
    metrics.install(app)  # last: its middleware is the outermost, so it also counts BodyLimit's 413s
    return app


def body_limit(settings: Settings) -> Callable[[str], int]:
    """Largest body per path: an upload of the audio cap, or JSON carrying the audio or the image cap
    base64-encoded (whichever is larger) plus text."""
    upload = settings.audio_max_bytes + 64 * 2**10
    json_body = max(settings.audio_max_bytes, settings.image_max_bytes) * 4 // 3 + 2**20
    return lambda path: upload if path == "/v1/audio/transcriptions" else json_body

"""`GET /health`: whether every engine the server needs works. A probe generates one token on every chat
engine the modes need and transcribes half a second of silence on every speech engine; 503 if any fails.
The answer is cached (`ember.api.readiness`: at most one probe per MAX_AGE_S, shared by concurrent
callers); `age_s` says how old it is. `health_index` says whether ember-health's knowledge index is ready
(`{"ready", "building", "done", "total"}`: entries embedded so far while a server builds it); a missing index
does not make the server unavailable, as ember-health answers without sources meanwhile.

`GET /health/live`: 200 while the process serves requests; it touches no engine, store or limit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from ember.api.probe_wire import HealthReport, IndexStatus, Live
from ember.api.readiness import HealthProbe
from ember.api.routes.models import available_modes
from ember.api.wire import ERRORS
from ember.config import Settings
from ember.engines.pool import EnginePool
from ember.medical.service import Knowledge

router = APIRouter(responses=ERRORS)


def _health(request: Request) -> HealthProbe:
    health: HealthProbe = request.app.state.health
    return health


def _knowledge(request: Request) -> Knowledge:
    knowledge: Knowledge = request.app.state.services.knowledge
    return knowledge


@router.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
async def health(
    probe: Annotated[HealthProbe, Depends(_health)], knowledge: Annotated[Knowledge, Depends(_knowledge)]
) -> JSONResponse:
    report = await probe.report()
    body = HealthReport(
        status="ok" if report.ok else "unavailable",
        engines=report.engines,
        age_s=round(report.age_s(), 3),
        health_index=IndexStatus.model_validate(knowledge.status()),  # not cached: a look at files and counters
    )
    return JSONResponse(body.wire(), status_code=200 if report.ok else 503)


@router.get("/health/live")
async def live() -> Live:
    return Live()


async def probe_engines(pool: EnginePool, settings: Settings) -> dict[str, dict[str, object]]:
    """Probe every role the modes use and every speech role, in turn: {role: what `EnginePool.probe` said}."""
    roles = dict.fromkeys([*(role for mode in available_modes(settings) for role in mode.roles), *pool.speech_roles()])
    return {role: await pool.probe(role, settings.health_timeout_s) for role in roles}

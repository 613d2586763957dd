"""`GET /health`: generates one token on every chat engine the modes need and transcribes half a second of
silence on every speech engine; 503 if any fails."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ember.api.deps import PipelineDep, SettingsDep
from ember.api.routes.models import available_modes

router = APIRouter()


@router.get("/health")
async def health(pipeline: PipelineDep, settings: SettingsDep) -> JSONResponse:
    roles = dict.fromkeys(
        [*(role for mode in available_modes(settings) for role in mode.roles), *pipeline.engines.speech_roles()]
    )
    engines = {role: await pipeline.engines.probe(role, settings.health_timeout_s) for role in roles}
    ok = all(e["ok"] for e in engines.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "engines": engines}, status_code=200 if ok else 503)

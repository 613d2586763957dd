"""`GET /v1/models`: the modes this server can run, as OpenAI model objects."""

from __future__ import annotations

from fastapi import APIRouter

from ember import registry
from ember.api.deps import PrincipalDep, SettingsDep
from ember.api.wire import ERRORS, ModelCard, ModelList
from ember.config import Settings
from ember.errors import ModelNotFound, shown
from ember.modes.base import Mode

router = APIRouter(responses=ERRORS)


def available_modes(settings: Settings) -> list[Mode]:
    """Modes whose every model role has an engine configured."""
    return [m for m in registry.modes if all(role in settings.roles for role in m.roles)]


def _card(mode: Mode) -> ModelCard:
    return ModelCard(id=mode.name, created=0, owned_by="ember", description=mode.description)


@router.get("/v1/models")
async def list_models(settings: SettingsDep, _: PrincipalDep) -> ModelList:
    return ModelList(data=[_card(m) for m in available_modes(settings)])


@router.get("/v1/models/{model_id}")
async def get_model(model_id: str, settings: SettingsDep, _: PrincipalDep) -> ModelCard:
    for mode in available_modes(settings):
        if mode.name == model_id:
            return _card(mode)
    raise ModelNotFound(f"The model {shown(model_id)} does not exist", param="model")

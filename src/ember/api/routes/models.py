"""`GET /v1/models`: the modes this server can run and its embedding models, as OpenAI model objects (with
Ember's `description`, and `task`: `chat` for a mode, `embedding` for a `/v1/embeddings` model)."""

from __future__ import annotations

from fastapi import APIRouter

from ember import registry
from ember.api.deps import PrincipalDep, SettingsDep
from ember.api.wire import ERRORS, ModelCard, ModelList
from ember.config import Settings
from ember.errors import ModelNotFound, shown
from ember.modes.base import Mode
from ember.serving.embeddings import embedding_models

router = APIRouter(responses=ERRORS)


def available_modes(settings: Settings) -> list[Mode]:
    """Modes whose every model role has an engine configured."""
    return [m for m in registry.modes if all(role in settings.roles for role in m.roles)]


def _cards(settings: Settings) -> list[ModelCard]:
    modes = [
        ModelCard(id=m.name, created=0, owned_by="ember", description=m.description, task="chat")
        for m in available_modes(settings)
    ]
    embedders = [
        ModelCard(id=m.id, created=0, owned_by="ember", description=m.description, task="embedding")
        for m in embedding_models(settings)
    ]
    return [*modes, *embedders]


@router.get("/v1/models")
async def list_models(settings: SettingsDep, _: PrincipalDep) -> ModelList:
    return ModelList(data=_cards(settings))


@router.get("/v1/models/{model_id}")
async def get_model(model_id: str, settings: SettingsDep, _: PrincipalDep) -> ModelCard:
    for card in _cards(settings):
        if card.id == model_id:
            return card
    raise ModelNotFound(f"The model {shown(model_id)} does not exist", param="model")

"""Serving one embeddings request, whatever its wire format: the embedding role the request's model names,
the inputs checked against the caps, the key's limits (one request, and tokens: the inputs' estimate must
fit before, the tokens the model read are debited after), and a place in the server's admission limit
while the engine runs. The caller has checked the scope. Nothing here logs or keeps the inputs; this
module knows nothing of HTTP.

An embedding role's public model id is `ember-<role>` (`ember-embed` for the default `embed` role); the
bare role name is accepted too, as speech roles are in transcriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from ember.assets.catalogue import CATALOGUE
from ember.config import Settings
from ember.engines.base import Embeddings
from ember.errors import InvalidRequest, ModelNotFound, shown
from ember.policy.keys import Principal
from ember.policy.limits import estimate_tokens
from ember.serving.base import Serving

PREFIX = "ember-"
MAX_INPUTS = 2048  # texts in one request, as OpenAI allows
MAX_CHARS = 1_000_000  # characters in all of a request's texts (about 250,000 tokens of English)


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding role as `/v1/models` lists it."""

    id: str
    role: str
    description: str


@dataclass(frozen=True)
class Embedded:
    """A served request: the model's public id, the vectors and tokens, and the response headers (the key's quota)."""

    model: str
    embeddings: Embeddings
    headers: dict[str, str]


def embedding_models(settings: Settings) -> list[EmbeddingModel]:
    """Every configured embedding role, as a public model."""
    models = []
    for role, spec in settings.roles.items():
        if spec.task == "embedding":
            asset = CATALOGUE.get(spec.model)
            name = asset.title if asset is not None and spec.url is None else spec.model
            models.append(EmbeddingModel(PREFIX + role, role, f"POST /v1/embeddings: {name}"))
    return models


def check_inputs(texts: list[str]) -> None:
    """InvalidRequest (param `input`) unless there are 1 to MAX_INPUTS texts, none empty, MAX_CHARS in all."""
    if not texts:
        raise InvalidRequest("'input' must hold at least one text", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"'input' holds {len(texts)} texts; at most {MAX_INPUTS} are allowed", param="input")
    empty = next((n for n, text in enumerate(texts) if not text), None)
    if empty is not None:
        where = "'input'" if len(texts) == 1 else f"'input' text {empty}"
        raise InvalidRequest(f"{where} is empty; every text needs at least one character", param="input")
    chars = sum(len(text) for text in texts)
    if chars > MAX_CHARS:
        raise InvalidRequest(f"'input' holds {chars} characters; at most {MAX_CHARS} are allowed", param="input")


class EmbeddingServing(Serving):
    def model(self, name: str) -> EmbeddingModel:
        """The embedding model `name` (its public id or its role) names; ModelNotFound if none."""
        models = embedding_models(self.settings)
        found = next((m for m in models if name in (m.id, m.role)), None)
        if found is None:
            known = ", ".join(m.id for m in models) or "none"
            raise ModelNotFound(f"The embedding model {shown(name)} does not exist. Available: {known}", param="model")
        return found

    async def embed(self, principal: Principal, name: str, texts: list[str], dimensions: int | None) -> Embedded:
        """`texts` embedded by the model `name` names, for `principal`."""
        model = self.model(name)  # an unknown model fails before any limit is spent
        check_inputs(texts)
        estimated = estimate_tokens(sum(len(text) for text in texts))
        quota = await self.limiter.check(principal, estimated)
        async with self.admission.hold():
            engine = await self.pipeline.engines.get_embedding(model.role)
            embeddings = await engine.embed(texts, dimensions)
        with anyio.CancelScope(shield=True):  # a remote server that does not count tokens is charged the estimate
            await self.limiter.debit(principal, embeddings.tokens or estimated)
        return Embedded(model.id, embeddings, quota.headers())

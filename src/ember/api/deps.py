"""Request-scoped access to the app's single Pipeline, Settings and KeyStore, the serving objects over them
and its Limiter and Admission, and the request's Principal (no globals, no import-time state). A route whose
scope is fixed declares it as a dependency (`AudioPrincipal`, or `Annotated[Principal, Depends(requires(...))]`),
checked before its body runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, Request

from ember.config import Settings
from ember.errors import Unauthenticated
from ember.policy.keys import KEY_PREFIX, LOCAL, KeyStore, Principal
from ember.serving.base import Serving
from ember.serving.chat import ChatServing
from ember.serving.embeddings import EmbeddingServing
from ember.serving.pipeline import Pipeline
from ember.serving.responses import ResponsesServing
from ember.serving.transcription import TranscriptionServing

S = TypeVar("S", bound=Serving)


def _pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _serving(kind: type[S]) -> Callable[[Request], S]:
    """A dependency giving a `kind` serving object over the app's pipeline, settings, limiter and admission."""

    def serving(request: Request) -> S:
        state = request.app.state
        return kind(state.pipeline, state.settings, state.limiter, state.admission)

    return serving


def _secret(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def _principal(request: Request) -> Principal:
    """The key's principal. Without required keys, a request with no Ember key (OpenAI clients always send
    some key) acts as the local principal; an Ember key is still checked, so its tier applies."""
    settings: Settings = request.app.state.settings
    keys: KeyStore = request.app.state.keys
    secret = _secret(request)
    if not settings.keys_required and (secret is None or not secret.startswith(KEY_PREFIX)):
        return LOCAL
    if secret is None:
        raise Unauthenticated(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' "
            "(an operator creates one with `ember keys create`)."
        )
    return await anyio.to_thread.run_sync(keys.authenticate, secret)


def requires(scope: str, *alternatives: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency giving the request's principal once it holds `scope` (or one of the `alternatives`);
    PermissionDenied (403) otherwise."""

    async def principal_with(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        principal.require(scope, *alternatives)
        return principal

    return principal_with


ChatServingDep = Annotated[ChatServing, Depends(_serving(ChatServing))]
TranscriptionServingDep = Annotated[TranscriptionServing, Depends(_serving(TranscriptionServing))]
EmbeddingServingDep = Annotated[EmbeddingServing, Depends(_serving(EmbeddingServing))]
ResponsesServingDep = Annotated[ResponsesServing, Depends(_serving(ResponsesServing))]
PipelineDep = Annotated[Pipeline, Depends(_pipeline)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
AdminPrincipal = Annotated[Principal, Depends(requires("admin"))]
AudioPrincipal = Annotated[Principal, Depends(requires("audio"))]
ChatPrincipal = Annotated[Principal, Depends(requires("chat"))]
ShoppingPrincipal = Annotated[Principal, Depends(requires("shopping"))]

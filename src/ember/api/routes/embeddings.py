"""`POST /v1/embeddings`, compatible with OpenAI's: `model` (`ember-embed`, or another embedding role's
`ember-<role>`), `input` (a text or a list of texts; token ids are refused), `encoding_format` (`float` or
`base64`: little-endian float32 bytes), `dimensions` (the model's own size only) and `user` (accepted; nothing
is kept). It needs the `chat` scope.

Caps, limits, admission and the engine are `ember.serving.embeddings`'s: the request counts against the key's
requests and tokens per minute, and takes a place in the server's admission limit while the model runs
(503 `server_busy` when full). Neither this route nor the serving layer logs the inputs.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ember.api.deps import ChatPrincipal, EmbeddingServingDep
from ember.api.protocol import EmbeddingRequest, embeddings_json, texts_of
from ember.api.wire import ERRORS, EmbeddingList

log = logging.getLogger(__name__)
router = APIRouter(responses=ERRORS)


@router.post("/v1/embeddings", response_model=EmbeddingList)
async def embeddings(body: EmbeddingRequest, serving: EmbeddingServingDep, principal: ChatPrincipal) -> JSONResponse:
    if body.model_extra:
        log.info("ignoring unknown request fields: %s", body.extra_field_names())
    done = await serving.embed(principal, body.model, texts_of(body), body.dimensions)
    payload = embeddings_json(done.model, done.embeddings, body.encoding_format or "float")
    return JSONResponse(payload, headers=done.headers)

"""`GET /v1/conversations/{id}/media/{sha256}`: an image a stored turn of the person's conversation carried,
kept with their `media_storage` consent. Another person's image, one the conversation does not name, and one
not (or no longer) stored are all 404, as for a conversation that is not theirs."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response

from ember.api.deps import PipelineDep, PrincipalDep
from ember.api.routes.conversations import UserQuery
from ember.api.wire import ERRORS
from ember.policy import privacy
from ember.store.media import MediaStore

router = APIRouter(responses=ERRORS)

Sha256 = Annotated[str, PathParam(pattern=r"^[0-9a-f]{64}$", description="the image's sha256, as its part names it")]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")  # what intake stores (`ember.intake.images`)


@router.get(
    "/v1/conversations/{conversation_id}/media/{sha256}",
    responses={200: {"content": {mime: {} for mime in IMAGE_TYPES}}},
    response_class=Response,
)
async def get_media(
    conversation_id: str, sha256: Sha256, pipeline: PipelineDep, principal: PrincipalDep, user: UserQuery = None
) -> Response:
    person, modes = privacy.person_of(principal, user), pipeline.modes_for(principal.scopes)
    found = await anyio.to_thread.run_sync(
        lambda: MediaStore(pipeline.store.db).image(conversation_id, sha256, person, modes)
    )
    headers = {"Cache-Control": "private, max-age=3600", "ETag": f'"{sha256}"', "X-Content-Type-Options": "nosniff"}
    return Response(found.data, media_type=found.mime, headers=headers)

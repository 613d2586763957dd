"""Check and normalise images that users send (data URIs, files, and, only when enabled, http(s) URLs).

Refuses, each with a 400 a person understands (`InvalidImage`): a data URI over the byte cap (judged from
the base64 length, before decoding), an image over the pixel cap (judged from its header, before its
pixels are decoded; Pillow's decompression-bomb guard stands behind it), anything but JPEG, PNG, WebP or
GIF, data that is not base64 or does not decode, and URLs the server was not allowed to fetch. Accepted
images are upright (EXIF orientation applied), one frame (a GIF's first) and RGB or RGBA; an image that
needed none of that keeps its original bytes. This module does not look at what an image shows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from pathlib import Path

import anyio
import httpx
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from ember.errors import InvalidImage
from ember.types import Image

MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
KEPT_MODES = {"RGB", "L", "RGBA"}  # modes every engine reads; others (P, CMYK, I;16 …) are converted
EXIF_ORIENTATION = 0x0112
DATA_URI_HEADER_CHARS = 256  # `data:<mime>;base64,` must end within this many characters
URL_TIMEOUT_S = 10.0
MB = 2**20


def _mb(n: int) -> str:
    return f"{n / MB:g} MB"


def decode_image(data: bytes, max_pixels: int, where: str) -> Image:
    """Check `data` is a JPEG, PNG, WebP or GIF of at most `max_pixels`, and return it normalised."""
    if not data:
        raise InvalidImage(f"{where}: the image is empty", param=where)
    try:
        image = PILImage.open(io.BytesIO(data), formats=list(MIME))
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"{where}: not a JPEG, PNG, WebP or GIF image", param=where) from exc
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise InvalidImage(f"{where}: the image has too many pixels (at most {max_pixels:,})", param=where) from exc
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise InvalidImage(
                f"{where}: the image is {width}x{height} pixels; at most {max_pixels:,} pixels are accepted",
                param=where,
            )
        fmt = str(image.format)
        try:
            image.load()  # the first frame only
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise InvalidImage(f"{where}: the {fmt} image is damaged or incomplete ({exc})", param=where) from exc
        if _needs_normalising(image):
            return _normalised(image)
    return Image(data, MIME[fmt], width, height, hashlib.sha256(data).hexdigest())


def _needs_normalising(image: PILImage.Image) -> bool:
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    animated = bool(getattr(image, "is_animated", False))
    return image.format == "GIF" or animated or orientation != 1 or image.mode not in KEPT_MODES


def _normalised(image: PILImage.Image) -> Image:
    """The first frame, upright, as RGB (or RGBA when it has transparency), re-encoded as PNG."""
    upright = ImageOps.exif_transpose(image) or image
    has_alpha = upright.mode in {"RGBA", "LA", "PA"} or "transparency" in upright.info
    converted = upright.convert("RGBA" if has_alpha else "RGB")
    out = io.BytesIO()
    converted.save(out, format="PNG")
    data = out.getvalue()
    return Image(data, MIME["PNG"], converted.width, converted.height, hashlib.sha256(data).hexdigest())


def decode_data_uri(url: str, max_bytes: int, max_pixels: int, where: str) -> Image:
    """`data:image/…;base64,…`: size-checked from its length before the base64 is decoded."""
    comma = url.find(",", 0, DATA_URI_HEADER_CHARS)
    params = url[5:comma].split(";") if comma > 0 else []
    if not params or "base64" not in params[1:]:
        raise InvalidImage(f"{where}: an image data URI must look like data:image/png;base64,<data>", param=where)
    payload = url[comma + 1 :]
    if len(payload) * 3 // 4 > max_bytes:
        raise InvalidImage(f"{where}: the image is larger than {_mb(max_bytes)}", param=where)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"{where}: the image data is not valid base64", param=where) from exc
    return decode_image(data, max_pixels, where)


async def fetch_image(url: str, max_bytes: int, max_pixels: int, where: str) -> Image:
    """Download an http(s) image (only when the operator enabled it), stopping at `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=URL_TIMEOUT_S, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidImage(f"{where}: fetching the image gave HTTP {response.status_code}", param=where)
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise InvalidImage(f"{where}: the image is larger than {_mb(max_bytes)}", param=where)
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise InvalidImage(f"{where}: could not fetch the image ({exc.__class__.__name__})", param=where) from exc
    return await anyio.to_thread.run_sync(decode_image, b"".join(chunks), max_pixels, where)


def url_kind(url: str) -> str:
    """`data`, `http`, or `other`, from the URL's scheme."""
    scheme = url[: url.find(":")].lower() if ":" in url[:16] else ""
    return {"data": "data", "http": "http", "https": "http"}.get(scheme, "other")


def refuse_url(url: str, where: str) -> InvalidImage:
    """The error for an image URL this server will not fetch."""
    if url_kind(url) == "http":
        return InvalidImage(
            f"{where}: this server does not fetch image URLs; send the image inline as a data URI "
            "(data:image/jpeg;base64,…), or ask the operator to set EMBER_ALLOW_IMAGE_URLS=1",
            param=where,
        )
    return InvalidImage(f"{where}: image_url must be a data URI (data:image/png;base64,…)", param=where)


def load_image(path: Path, max_bytes: int, max_pixels: int) -> Image:
    """Read and check an image file (the CLI's way in); the size is checked before the file is read."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidImage(f"{path} is {_mb(size)}; the limit is {_mb(max_bytes)}", param="image")
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImage(f"cannot read {path}: {exc.strerror}", param="image") from exc
    return decode_image(data, max_pixels, str(path))


def data_uri(image: Image) -> str:
    """The image as a data URI, as OpenAI-compatible servers take it."""
    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode()}"

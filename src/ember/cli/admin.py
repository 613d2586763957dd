"""`ember keys` and `ember privacy`: chores on the server's database (API keys; purging old history)."""

from __future__ import annotations

from typing import Any

import click

from ember.cli.common import load_settings


@click.group()
def keys() -> None:
    """API keys: create (shown once), list, revoke. Stored only as hashes in the server's database."""


def _key_store() -> Any:
    from ember.policy.keys import KeyStore
    from ember.store.sql import SqlStore

    settings = load_settings()
    return KeyStore(SqlStore(settings.db_url).db, settings)


@keys.command("create")
@click.argument("owner")
@click.option("--scope", "scopes", multiple=True, default=("chat", "audio"), show_default=True)
@click.option("--tier", default="free", show_default=True)
@click.option("--name", default="", help="a note to recognise the key by")
def keys_create(owner: str, scopes: tuple[str, ...], tier: str, name: str) -> None:
    """Create a key for OWNER and print it (it cannot be shown again)."""
    secret, record = _key_store().create(owner, scopes, tier, name)
    click.echo(secret)
    click.echo(f"{record['id']}  owner={owner}  tier={tier}  scopes={record['scopes']}", err=True)


@keys.command("list")
@click.option("--owner", default=None)
def keys_list(owner: str | None) -> None:
    """List keys (never their secrets)."""
    for k in _key_store().list(owner):
        state = "revoked" if k["revoked_at"] else "active"
        click.echo(f"{k['id']}  {k['prefix']}…  {k['owner']:<20} {k['tier']:<8} {k['scopes']:<28} {state}  {k['name']}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (from `ember keys list`); requests with it get 401 at once."""
    _key_store().revoke(key_id)
    click.echo(f"revoked {key_id}")


@click.group("privacy")
def privacy() -> None:
    """Privacy chores on the server's database."""


@privacy.command("purge")
@click.option("--days", type=float, default=None, help="purge what is older than this (default: retention_days)")
def privacy_purge(days: float | None) -> None:
    """Delete conversations and stored responses older than the retention period (`ember serve` does it hourly)."""
    from ember.policy.privacy import purge_expired
    from ember.store.sql import SqlStore

    settings = load_settings(retention_days=days)
    if settings.retention_days is None:
        raise click.ClickException("no retention period: set EMBER_RETENTION_DAYS (or retention_days) or --days")
    store = SqlStore(settings.db_url)
    try:
        purged = purge_expired(store, settings)
    finally:
        store.close()
    days_text = f"{settings.retention_days:g} days"
    click.echo(
        f"purged {purged.conversations} conversations ({purged.messages} messages) and {purged.responses} "
        f"responses older than {days_text}"
    )

"""What the command modules share: Settings from the environment with readable errors, and the file type of
audio and image arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from ember.config import Settings

AUDIO_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def load_settings(**overrides: Any) -> Settings:
    """Settings from EMBER_* and ember.toml, with the overrides that are not None; a ClickException if invalid."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc

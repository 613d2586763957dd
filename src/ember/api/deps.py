"""Request-scoped access to the app's single Pipeline and Settings (no globals, no import-time state)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ember.config import Settings
from ember.pipeline import Pipeline


def _pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PipelineDep = Annotated[Pipeline, Depends(_pipeline)]
SettingsDep = Annotated[Settings, Depends(_settings)]

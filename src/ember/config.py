"""One validated Settings object, read from EMBER_* environment variables and an optional ember.toml.

Settings are built once at start (CLI or `create_app`) and passed down; nothing reads the environment
later. This module does not load models or open databases.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CTX_SIZE = 4096
DEFAULT_PARALLEL = 4
DEFAULT_AGENTS = 3  # ember-contemplating's agents: fewer than the `chat` role's slots, leaving one for others
MEDIA_MAX_BYTES = 5 * 2**20  # a stored image at most (a phone photo fits); a larger one is described, not kept
Task = Literal["chat", "speech", "embedding"]  # what a model role does: which registry makes its engine


class EngineSpec(BaseModel):
    """Where one model role runs: which registered engine, on which model, with what resources."""

    task: Task = Field(
        default="chat", description="what the role does; a role that overrides a default one inherits its task"
    )
    engine: str = "llama_cpp"
    model: str = Field(description="catalogue role (e.g. chat-fast), a GGUF path, or a remote model name")
    url: str | None = Field(default=None, description="base URL of a remote OpenAI-compatible server")
    api_key: str | None = None
    threads: int | None = Field(default=None, ge=1, description="CPU threads; default: all cores")
    ctx_size: int = Field(default=DEFAULT_CTX_SIZE, ge=256)
    parallel: int = Field(default=DEFAULT_PARALLEL, ge=1, le=64)
    timeout_s: float = Field(default=600.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict, description="engine-specific extras")


class Tier(BaseModel):
    """Limits for the keys of one tier, per key; None means unlimited."""

    model_config = {"extra": "forbid"}

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1, description="prompt + completion, weighted by mode")
    concurrent_streams: int | None = Field(default=None, ge=1, description="requests in flight at once")


LOCAL_TIER = "local"


def _default_tiers() -> dict[str, Tier]:
    return {
        LOCAL_TIER: Tier(),  # the keyless loopback default and operators' own keys
        "free": Tier(requests_per_minute=20, tokens_per_minute=40_000, concurrent_streams=2),
        "partner": Tier(requests_per_minute=600, tokens_per_minute=2_000_000, concurrent_streams=32),
    }


def _default_roles() -> dict[str, EngineSpec]:
    return {
        "chat-fast": EngineSpec(engine="llama_cpp", model="chat-fast"),
        "chat": EngineSpec(engine="llama_cpp", model="chat"),  # ember-thinking, ember-contemplating
        "asr": EngineSpec(task="speech", engine="faster_whisper", model="asr", parallel=1),
        "embed": EngineSpec(task="embedding", engine="onnx", model="embed", parallel=1),  # POST /v1/embeddings
    }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EMBER_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("ember")))
    cache_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir("ember")))
    database_url: str | None = None
    roles: dict[str, EngineSpec] = Field(default_factory=_default_roles)
    load_on_start: bool = True
    build_health_index: bool = Field(
        default=True, description="build a missing health knowledge index in the background while serving"
    )
    health_timeout_s: float = Field(default=30.0, gt=0)
    audio_max_bytes: int = Field(default=25 * 2**20, ge=1024, description="largest audio upload")
    audio_max_seconds: float = Field(default=600.0, gt=0, description="longest audio accepted")
    audio_max_count: int = Field(default=4, ge=1, description="input_audio parts in one chat request")
    image_max_bytes: int = Field(default=20 * 2**20, ge=1024, description="largest image (its data URI: ~4/3 of it)")
    image_max_pixels: int = Field(default=40_000_000, ge=64, description="largest image, width x height")
    image_max_count: int = Field(default=8, ge=1, description="images in one request")
    media_max_bytes: int = Field(
        default=MEDIA_MAX_BYTES, ge=0, description="largest image kept with a stored turn (`media_storage` consent)"
    )
    allow_image_urls: bool = Field(default=False, description="fetch http(s) image URLs (off: data URIs only)")
    require_keys: bool | None = Field(default=None, description="None: keys required unless bound to loopback")
    tiers: dict[str, Tier] = Field(default_factory=_default_tiers)
    redis_url: str | None = Field(default=None, description="share rate limits across processes, e.g. redis://h:6379")
    retention_days: float | None = Field(default=None, gt=0, description="purge history older than this")
    contemplating_agents: int = Field(
        default=DEFAULT_AGENTS, ge=1, le=16, description="ember-contemplating's parallel agents (on the chat role)"
    )
    titles: bool = Field(
        default=True, description="have `title_role` write a conversation's title after its first exchange"
    )
    title_role: str = Field(default="chat-fast", description="the chat role that writes conversation titles")
    admission_running: int | None = Field(
        default=None, ge=1, description="generation requests in progress at once; default: all roles' slots"
    )
    admission_waiting: int | None = Field(
        default=None, ge=0, description="more that may wait for a turn (beyond: 503); default: as many as running"
    )
    admission_retry_after_s: int = Field(default=1, ge=1, description="Retry-After of a 503 server_busy")
    llama_server: Literal["auto", "never"] = Field(
        default="auto",
        description="auto: local GGUF roles (engine llama_cpp) run the natively built llama-server when it is in the "
        "cache (`ember models build-server`), else xllamacpp's; never: always xllamacpp's",
    )

    @field_validator("roles", mode="after")
    @classmethod
    def _merge_default_roles(cls, roles: dict[str, EngineSpec]) -> dict[str, EngineSpec]:
        defaults = _default_roles()
        inherited = {
            role: spec.model_copy(update={"task": defaults[role].task})
            for role, spec in roles.items()
            if role in defaults and "task" not in spec.model_fields_set
        }
        return {**defaults, **roles, **inherited}

    @field_validator("tiers", mode="after")
    @classmethod
    def _merge_default_tiers(cls, tiers: dict[str, Tier]) -> dict[str, Tier]:
        return {**_default_tiers(), **tiers}

    @property
    def keys_required(self) -> bool:
        """Explicit `require_keys`, else whether the server listens beyond this machine."""
        if self.require_keys is not None:
            return self.require_keys
        return self.host not in {"127.0.0.1", "::1", "localhost"}

    def with_speech_role(self, model: str) -> Settings:
        """These settings, plus `model` as a local faster-whisper speech role unless a role of that name exists."""
        if model in self.roles:
            return self
        spec = EngineSpec(task="speech", engine="faster_whisper", model=model, parallel=1)
        return self.model_copy(update={"roles": {**self.roles, model: spec}})

    @property
    def admission_limits(self) -> tuple[int, int]:
        """(running, waiting): the explicit settings, else the `parallel` slots of every role summed, and as
        many again waiting (one queued behind each slot)."""
        running = self.admission_running or sum(spec.parallel for spec in self.roles.values())
        waiting = running if self.admission_waiting is None else self.admission_waiting
        return running, waiting

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ember.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=os.environ.get("EMBER_CONFIG", "ember.toml"))
        return (init_settings, env_settings, toml)

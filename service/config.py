"""Service settings: one pydantic-settings object, read from ``HYPERSWEEP_*`` variables.

Every setting has a range; a value outside it is refused when the settings are read, so
``hypersweep serve`` refuses to start with one line naming the variable."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from hypersweep.limits import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS, TOKEN_PATTERN

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

#: The embedded default: a SQLite file in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///hypersweep.db"
#: The databases the server runs on.
BACKENDS = ("sqlite", "postgresql")


class Settings(BaseSettings):
    """What the server needs to run. Every field can be set as ``HYPERSWEEP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="HYPERSWEEP_", extra="ignore")

    database_url: str = Field(default=DEFAULT_DATABASE_URL, description="A SQLAlchemy URL of SQLite or PostgreSQL.")
    lease_seconds: float = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=MIN_LEASE_SECONDS,
        le=MAX_LEASE_SECONDS,
        allow_inf_nan=False,
        description="How long a claim stays valid without a heartbeat.",
    )
    token: SecretStr | None = Field(
        default=None, description="When set, the API requires 'Authorization: Bearer <token>'. Unset: no token."
    )
    worker_token: SecretStr | None = Field(
        default=None,
        description="A second token, for workers: it claims, reports on and finishes trials and reads, "
        "but cannot submit or cancel sweeps. Needs 'token'.",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=256, le=1 << 30)
    reaper_interval: float | None = Field(
        default=None,
        ge=0.01,
        le=86_400,
        allow_inf_nan=False,
        description="Seconds between sweeps for expired leases; default a quarter lease, at most 5 s.",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str) -> str:
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError("not a database URL (sqlite:///PATH or postgresql+psycopg://...)") from None
        if backend not in BACKENDS:
            raise ValueError(f"the server runs on {' or '.join(BACKENDS)}, not {backend}")
        return url

    @field_validator("token", "worker_token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        # An empty token would leave the API open (or, as the worker token, shut workers
        # out): refused, so that only an unset variable means no token. The value is never
        # repeated in the message.
        if token is None:
            return None
        value = token.get_secret_value()
        if not value:
            raise ValueError("the token is empty; set one, or unset the variable to run without a token")
        if not re.fullmatch(TOKEN_PATTERN, value):
            raise ValueError(
                "a token may hold only visible ASCII characters, without spaces (it travels in an HTTP header)"
            )
        return token

    @model_validator(mode="after")
    def _check_tokens(self) -> Settings:
        if self.worker_token is None:
            return self
        if self.token is None:
            raise ValueError("HYPERSWEEP_WORKER_TOKEN needs HYPERSWEEP_TOKEN; without it the API is open to anyone")
        if self.worker_token.get_secret_value() == self.token.get_secret_value():
            raise ValueError("HYPERSWEEP_WORKER_TOKEN must differ from HYPERSWEEP_TOKEN")
        return self

    def reaper_seconds(self) -> float:
        if self.reaper_interval is not None:
            return self.reaper_interval
        return min(5.0, self.lease_seconds / 4)

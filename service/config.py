"""Service settings: one pydantic-settings object, read from ``HYPERSWEEP_*`` variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hypersweep.limits import DEFAULT_LEASE_SECONDS

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

#: The embedded default: a SQLite file in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///hypersweep.db"


class Settings(BaseSettings):
    """What the server needs to run. Every field can be set as ``HYPERSWEEP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="HYPERSWEEP_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    lease_seconds: float = Field(
        default=DEFAULT_LEASE_SECONDS, gt=0, description="How long a claim stays valid without a heartbeat."
    )
    token: SecretStr | None = Field(
        default=None, description="When set, the API requires 'Authorization: Bearer <token>'."
    )
    worker_token: SecretStr | None = Field(
        default=None,
        description="A second token, for workers: it claims, reports on and finishes trials and reads, "
        "but cannot submit or cancel sweeps. Needs 'token'.",
    )
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    reaper_interval: float | None = Field(
        default=None, description="Seconds between sweeps for expired leases; default a quarter lease, at most 5 s."
    )

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

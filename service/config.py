"""Service settings: one pydantic-settings object, read from ``HYPERSWEEP_*`` variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "Settings"]

#: The embedded default: a SQLite file in the working directory.
DEFAULT_DATABASE_URL = "sqlite:///hypersweep.db"


class Settings(BaseSettings):
    """What the server needs to run. Every field can be set as ``HYPERSWEEP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="HYPERSWEEP_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    lease_seconds: float = Field(default=60.0, gt=0, description="How long a claim stays valid without a heartbeat.")
    token: SecretStr | None = Field(
        default=None, description="When set, the API requires 'Authorization: Bearer <token>'."
    )
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    reaper_interval: float | None = Field(
        default=None, description="Seconds between sweeps for expired leases; default a quarter lease, at most 5 s."
    )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def reaper_seconds(self) -> float:
        if self.reaper_interval is not None:
            return self.reaper_interval
        return min(5.0, self.lease_seconds / 4)

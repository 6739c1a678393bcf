"""The one settings object: defaults < `sensorcast.toml` < `SENSORCAST_*` env < CLI flags."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from forecasting.schema import JENA, StationSchema, load_station


class Settings(BaseSettings):
    """Paths and parameters of one sensorcast installation.

    Build it explicitly (`Settings()` or `Settings(data_dir=...)`); keyword arguments are the
    CLI flags and win over environment variables, which win over `sensorcast.toml`.
    """

    model_config = SettingsConfigDict(
        env_prefix="SENSORCAST_",
        toml_file="sensorcast.toml",
        frozen=True,
        extra="forbid",
    )

    data_dir: Path = Field(Path("data"), description="Database, artifacts, drop folder, plots.")
    database_url: str | None = Field(
        None, description="Any SQLAlchemy URL; default: SQLite file data_dir/sensorcast.db."
    )
    station_schema: Path | None = Field(
        None, description="TOML station description; default: the built-in Jena station."
    )
    chunk_rows: int = Field(50_000, gt=0, description="Rows per ingest transaction.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'sensorcast.db'}"

    @property
    def drop_dir(self) -> Path:
        return self.data_dir / "incoming"

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @cached_property
    def station(self) -> StationSchema:
        return load_station(self.station_schema) if self.station_schema else JENA

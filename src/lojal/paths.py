"""Where Lojal reads marketer files and keeps its state.

State (SQLite file, outbox, plans, reports) lives under one folder: `$LOJAL_HOME` when set,
otherwise `var/` inside the project. The database URL defaults to a SQLite file there and is
overridden by `LOJAL_DATABASE_URL`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    project: Path
    state: Path

    @classmethod
    def resolve(cls, project: Path | str | None = None) -> "Paths":
        project_dir = Path(project or os.getcwd()).resolve()
        home = os.environ.get("LOJAL_HOME")
        state = Path(home).resolve() if home else project_dir / "var"
        return cls(project=project_dir, state=state)

    @property
    def database_url(self) -> str:
        return os.environ.get("LOJAL_DATABASE_URL") or f"sqlite:///{self.state / 'lojal.db'}"

    @property
    def config_dir(self) -> Path:
        return self.project / "config"

    @property
    def segments_dir(self) -> Path:
        return self.project / "segments"

    @property
    def templates_dir(self) -> Path:
        return self.project / "templates"

    def outbox_dir(self, run_date) -> Path:
        return self.state / "outbox" / run_date.isoformat()

    def relative(self, path: Path) -> str:
        """A path as marketers see it in messages: relative to the project when inside it."""
        try:
            return str(Path(path).resolve().relative_to(self.project))
        except ValueError:
            return str(path)

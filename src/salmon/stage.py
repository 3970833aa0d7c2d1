"""What every stage does around its work: output paths, resume checks, resolved config,
summary. A stage writing `out.jsonl` keeps `out.config.yaml` (its resolved config) and
`out.summary.json` beside it; a stage writing a folder keeps `config.yaml` and
`summary.json` inside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salmon.config import check_resume, dump_yaml, to_dict
from salmon.errors import SalmonError
from salmon.jsonl import atomic_write_text
from salmon.progress import info


@dataclass
class StageFiles:
    out: Path
    config: Path
    summary: Path

    @classmethod
    def for_file(cls, out: str | Path) -> StageFiles:
        out = Path(out)
        if out.exists() and out.is_dir():
            raise SalmonError(f"--out {out}: is a folder, expected a file path")
        stem = out.name[: -len(out.suffix)] if out.suffix else out.name
        return cls(out, out.with_name(f"{stem}.config.yaml"), out.with_name(f"{stem}.summary.json"))

    @classmethod
    def for_dir(cls, out: str | Path) -> StageFiles:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise SalmonError(f"--out {out}: is a file, expected a folder")
        return cls(out, out / "config.yaml", out / "summary.json")

    def begin(self, cfg: Any) -> bool:
        """Check a saved config matches; write ours. True when the output is already
        complete (the caller then returns it untouched)."""
        check_resume(cfg, self.config)
        done = self.out.exists() and (self.out.is_file() or self.summary.exists())
        if done:
            info(f"{self.out}: already complete; nothing to do (choose another --out to redo it)")
            return True
        try:
            atomic_write_text(self.config, dump_yaml(to_dict(cfg)))
        except OSError as e:
            raise SalmonError(f"{self.config}: cannot write ({e.strerror})") from None
        return False

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")

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
        if self.config.exists() and not self.written():
            self.config.unlink()  # a start that failed before writing anything: not a resume
        check_resume(cfg, self.config, [str(p) for p in self.existing()])
        done = self.out.exists() and (self.out.is_file() or self.summary.exists())
        if done:
            info(f"{self.out}: already complete; nothing to do (choose another --out to redo it)")
            return True
        try:
            atomic_write_text(self.config, dump_yaml(to_dict(cfg)))
        except OSError as e:
            raise SalmonError(f"{self.config}: cannot write ({e.strerror})") from None
        return False

    def existing(self) -> list[Path]:
        """What is at the output path now: the folder, or the file and the files beside it
        (config, summary, `.partial` pieces)."""
        if self.out.is_dir() or self.config.parent == self.out:
            return [self.out] if self.out.exists() else []
        beside = sorted(self.out.parent.glob(f"{self.out.name}.*")) if self.out.parent.is_dir() else []
        return [p for p in [self.out, self.config, self.summary, *beside] if p.exists()]

    def written(self) -> bool:
        """True when the stage wrote anything besides its resolved config."""
        if self.config.parent == self.out:
            return self.out.is_dir() and any(p != self.config for p in self.out.iterdir())
        return any(p != self.config for p in self.existing())

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(self.summary, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def remove_failed_start(out: str | Path, existed: bool) -> None:
    """After a stage failed: if it wrote nothing but its resolved config, remove that (and the
    folder it made), so a typo in a flag leaves nothing at the output path."""
    out = Path(out)
    try:
        files = StageFiles.for_dir(out) if out.is_dir() else StageFiles.for_file(out)
    except SalmonError:
        return
    if files.config.exists() and not files.written():
        files.config.unlink()
        if files.config.parent == out and not existed:
            try:
                out.rmdir()
            except OSError:
                pass


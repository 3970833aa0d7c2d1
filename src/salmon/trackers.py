"""Experiment trackers and training progress, the same for every training stage.

`--report-to tensorboard|wandb|none` (one value; TensorBoard events go to `OUT/tb/`, W&B
runs to `OUT/wandb/`, offline unless `WANDB_MODE` says otherwise, so nothing is sent
anywhere without asking). Stages built on a Hugging Face Trainer pass `trainer_report_to`
to their arguments and call `salmon_callbacks`; the PPO loop uses `StepTracker`.
Progress is one rich bar on stderr (salmon.progress) and one `key=value` line per log.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from salmon.errors import SalmonError
from salmon.progress import info, progress_bar

REPORT_TO = ("tensorboard", "wandb", "none")
REPORT_TO_HELP = "Tracker: tensorboard (events in OUT/tb/), wandb (offline unless WANDB_MODE is set) or none"


def check_report_to(value: str) -> None:
    if value not in REPORT_TO:
        raise SalmonError(f"--report-to {value}: expected one of {', '.join(REPORT_TO)}")
    if value == "wandb" and importlib.util.find_spec("wandb") is None:
        raise SalmonError("--report-to wandb: wandb is not installed (pip install 'salmon[wandb]')")
    if value == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
        raise SalmonError("--report-to tensorboard: tensorboard is not installed (pip install tensorboard)")


def prepare_tracker(value: str, out: Path) -> None:
    """Point the tracker's files into `out` (W&B offline by default)."""
    check_report_to(value)
    if value == "wandb":
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ["WANDB_DIR"] = str(Path(out))
        os.environ.setdefault("WANDB_PROJECT", "salmon")
        os.environ.setdefault("WANDB_SILENT", "true")
        Path(out).mkdir(parents=True, exist_ok=True)


def trainer_report_to(value: str, out: Path) -> list[str]:
    """The `report_to` of a Hugging Face TrainingArguments, with the files under `out`."""
    prepare_tracker(value, out)
    return [] if value == "none" else [value]


def salmon_callbacks(trainer, enabled: bool, out: Path) -> None:
    """Replace the Trainer's tqdm bar and printed dicts by salmon's bar and log lines, and
    send TensorBoard events to `out/tb` (as the PPO loop does)."""
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback):
            cb.logging_dir = str(Path(out) / "tb")

    class SalmonProgress(TrainerCallback):
        def __init__(self):
            self._bar, self._advance, self._last = None, None, 0

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and enabled:
                self._bar = progress_bar(state.max_steps, "train", "steps", True, completed=state.global_step)
                self._advance, self._last = self._bar.__enter__(), state.global_step

        def on_step_end(self, args, state, control, **kwargs):
            if self._advance is not None:
                self._advance(state.global_step - self._last)
                self._last = state.global_step

        def on_train_end(self, args, state, control, **kwargs):
            if self._bar is not None:
                self._bar.__exit__(None, None, None)
                self._bar = self._advance = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                info(f"step {state.global_step}: " + " ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in logs.items() if k != "total_flos"))

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(SalmonProgress())


class StepTracker:
    """Scalars per step for a hand-written loop (PPO): TensorBoard, W&B or nothing.
    `start` > 0 on a resume: TensorBoard drops its events past that step."""

    def __init__(self, value: str, out: Path, start: int = 0, config: dict[str, Any] | None = None):
        prepare_tracker(value, out)
        self.value, self._tb, self._run = value, None, None
        if value == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(out) / "tb"), purge_step=start + 1 if start else None)
        elif value == "wandb":
            import wandb

            self._run = wandb.init(dir=str(out), config=config or {}, resume="allow",
                                   id=_wandb_id(Path(out)), reinit="finish_previous")

    def log(self, scalars: dict[str, float], step: int, prefix: str = "") -> None:
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(f"{prefix}{k}", v, step)
        if self._run is not None:
            self._run.log({f"{prefix}{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._run is not None:
            self._run.finish()


def _wandb_id(out: Path) -> str:
    """One W&B run id per output folder, kept in it, so a resumed job continues its run."""
    path = out / ".wandb_id"
    if not path.exists():
        import uuid

        path.write_text(uuid.uuid4().hex[:12])
    return path.read_text().strip()

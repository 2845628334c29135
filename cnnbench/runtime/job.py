"""What a run knows of how it was launched: its command line, group choices, and, in a sweep, its number, folder and
what the sweep varies. The command reads it from Hydra once (`cnnbench.hydra_job.read_job`) and hands it down; a run
started in code gets the empty `Job()` and behaves as a single run launched without Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .overrides import Override
from .sweeps import sweep_size


@dataclass(frozen=True)
class Job:
    overrides: tuple[str, ...] = ()  # the command-line overrides as typed (`${...}` unresolved)
    choices: dict[str, str] = field(default_factory=dict)  # group choices: model=..., experiment=...
    swept: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # a sweep's keys -> values (None: a range)
    in_sweep: bool = False
    number: int | None = None  # the sweep job's number
    sweep_dir: Path | None = None
    generated_dir: bool = False  # the run (or sweep) folder is named after the clock: another name is as good
    parallel_jobs: int = 1  # sweep jobs that run at the same time on this machine
    hydra: dict | None = None  # Hydra's own settings, kept in <run dir>/.hydra/hydra.yaml
    from_command_line: bool = False  # launched by a command (False: a config built in code)

    def named_keys(self) -> list[str] | None:
        """The config keys and group choices the command line set (hydra.* and trainer.resume aside); None for a
        config built in code."""
        if not self.from_command_line:
            return None
        overrides = [Override.from_text(line) for line in self.overrides]
        return [o.key for o in overrides if not o.is_hydra and o.key != "trainer.resume"]

    def sweep_job_line(self) -> str | None:
        """`sweep job 4 of 6 (#3): optimizer.lr=0.1 data.batch_size=128` inside a sweep, else None."""
        if not self.in_sweep or self.number is None:
            return None
        total = sweep_size(self.sweep_dir / "multirun.yaml") if self.sweep_dir else None
        of_total = f" of {total}" if total else ""
        return f"sweep job {self.number + 1}{of_total} (#{self.number}): {' '.join(self.overrides)}"


IN_CODE = Job()  # a run started from Python with a config built in code

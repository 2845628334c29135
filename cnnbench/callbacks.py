"""Hydra callbacks: the closing line of a sweep, and its exit code."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .resume import SUMMARY_FILE, read_summary


class SweepSummary(Callback):
    """After a multirun: how many jobs ended how, where to look, and exit 1 if any job did not complete."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = Counter(job_status(p) for p in sorted(sweep_dir.glob("*/")) if (p / ".hydra").is_dir())
        if not statuses:
            return
        counts = ", ".join(f"{n} {status}" for status, n in statuses.most_common())
        print(f"sweep finished: {sum(statuses.values())} jobs, {counts}; "
              f"leaderboard: python -m cnnbench.report {sweep_dir}", flush=True)
        if set(statuses) - {"completed"}:
            sys.exit(1)


def job_status(job_dir: Path) -> str:
    summary = read_summary(job_dir / SUMMARY_FILE)
    return "incomplete" if summary is None else summary.get("status", "unknown")

"""What TensorBoard shows of a run beyond its curves: the HParams entry, the Custom Scalars layout, text.

The HParams entry (experiment, session start, session end) lives in an event file of its own,
`events.out.tfevents.hparams`, rewritten whole (a temporary file, renamed) whenever the run's status changes.
TensorBoard keeps the first value it reads of a tag's metadata, so appending a new status to the curves'
file would leave a resumed run showing its first ending forever.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from ..runtime.files import atomic_write
from . import metrics as m

HPARAMS_FILE = "events.out.tfevents.hparams"
# summary.json's status -> TensorBoard's: an interrupted run can be resumed (unknown); failed, diverged: failure
STATUS = {"running": api_pb2.STATUS_RUNNING, "completed": api_pb2.STATUS_SUCCESS, "interrupted": api_pb2.STATUS_UNKNOWN}
# Custom Scalars: the curves to compare on one chart each.
LAYOUT = {"train vs val": {"loss": ["Multiline", [f"^{m.TRAIN_LOSS}$", f"^{m.VAL_LOSS}$"]],
                           "accuracy": ["Multiline", [f"^{m.TRAIN_ACC}$", f"^{m.VAL_ACC}$", f"^{m.VAL_ACC_BEST}$"]],
                           "learning rate": ["Multiline", [f"^{m.LR}$"]]}}


@dataclass(frozen=True)
class HParam:
    name: str
    value: float | int | str | bool
    differs: bool = False  # swept in this run's sweep (TensorBoard works out what differs across its logdir)


def _summary(tag: str, plugin_data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(plugin_data),
                                        tensor=metadata.NULL_TENSOR)])


def hparams_summaries(hparams: list[HParam], status: str, start_time: float,
                      end_time: float | None = None) -> list[Summary]:
    """This session's values and, unless it is running, how it ended. No experiment summary: TensorBoard takes the
    columns of one run's experiment for the whole logdir (the first it finds), so a logdir over several sweeps would
    lose the keys the others varied; without one, it builds the experiment from every run's values (the union of
    the keys, `differs` where the runs disagree) and takes the runs' scalars as its metrics."""
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=start_time)
    for h in hparams:
        field = start.hparams[h.name]
        if isinstance(h.value, bool):
            field.bool_value = h.value
        elif isinstance(h.value, int | float) and math.isfinite(h.value):
            field.number_value = h.value
        else:
            field.string_value = str(h.value)
    summaries = [_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start))]
    if status != "running":
        end = plugin_data_pb2.SessionEndInfo(status=STATUS.get(status, api_pb2.STATUS_FAILURE),
                                             end_time_secs=end_time or time.time())
        summaries.append(_summary(metadata.SESSION_END_INFO_TAG,
                                  plugin_data_pb2.HParamsPluginData(session_end_info=end)))
    return summaries


def write_hparams(log_dir: Path, hparams: list[HParam], status: str, start_time: float) -> Path:
    """(Re)write `<log_dir>/events.out.tfevents.hparams`: in this thread (an error is raised here, not printed by
    a writer thread), to a temporary file renamed over the old one."""
    target = Path(log_dir) / HPARAMS_FILE
    now = time.time()
    events = [Event(wall_time=now, file_version="brain.Event:2")]
    events += [Event(wall_time=now, step=0, summary=summary)
               for summary in hparams_summaries(hparams, status, start_time, end_time=now)]

    def write(tmp: str) -> None:
        with open(tmp, "wb") as file:
            records = RecordWriter(file)
            for event in events:
                records.write(event.SerializeToString())
            records.flush()

    atomic_write(target, write)
    return target


# --- text --------------------------------------------------------------------------------------------------------

def code_block(text: str) -> str:
    """Markdown that TensorBoard's Text tab shows verbatim (it renders markdown; indented lines stay code)."""
    return "\n".join("    " + line for line in text.splitlines()) if text else "    (none)"


def summary_markdown(summary: dict) -> str:
    """summary.json as a two-column markdown table (per-class accuracies as their own table)."""
    rows = ["| key | value |", "|---|---|"]
    per_class = summary.get(m.TEST_PER_CLASS_ACC) or {}
    for key, value in summary.items():
        if key == m.TEST_PER_CLASS_ACC:
            continue
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        rows.append(f"| {key} | {shown.replace('|', '/')} |")
    if per_class:
        rows += ["", "| class | test accuracy |", "|---|---|"]
        rows += [f"| {name} | {'-' if acc is None else f'{acc:.4f}'} |" for name, acc in per_class.items()]
    return "\n".join(rows)


def class_tag(name: str) -> str:
    """`test/class_acc/<class>`; a '/' in a class name ("T-shirt/top") would open a TensorBoard group."""
    return f"{m.TEST_CLASS_ACC}/{name.replace('/', '_').replace(' ', '_')}"

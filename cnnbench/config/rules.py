"""What each config key allows: one rule per key, with the words the error message shows."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..data.sources import SOURCE_NAMES
from ..models import INIT_SCHEMES, list_models


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str  # shown to the user: "an integer >= 1"
    check: Callable[[object], bool]
    optional: bool = False  # null allowed


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def int_at_least(low: int, high: float = math.inf) -> Callable[[object], bool]:
    return lambda v: _is_int(v) and low <= v <= high


def number_above(low: float) -> Callable[[object], bool]:
    return lambda v: _is_number(v) and v > low


def number_at_least(low: float) -> Callable[[object], bool]:
    return lambda v: _is_number(v) and v >= low


def number_in(low: float, high: float, *, low_open: bool = False, high_open: bool = True) -> Callable[[object], bool]:
    return lambda v: (_is_number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high))


def one_of(*choices) -> Callable[[object], bool]:
    return lambda v: isinstance(v, str) and v in choices


def is_bool(v) -> bool:
    return isinstance(v, bool)


def is_text(v) -> bool:
    return isinstance(v, str) and v.strip() != ""


def is_count_or_fraction(v) -> bool:
    return int_at_least(0)(v) or (isinstance(v, float) and 0 <= v < 1)


def is_betas(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(number_in(0, 1)(b) for b in v)


MAX_SEED = 2**32 - 1  # numpy's and most tools' seed range; seed * 1_000_003 + rank still fits torch's 64 bits
MAX_SIDE = 4096  # pixels: a batch of 4096 x 4096 images already takes gigabytes
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
TRUE_OR_FALSE = "true or false"

RULES = (
    Rule("seed", f"an integer in [0, {MAX_SEED}]", int_at_least(0, MAX_SEED)),
    Rule("trainer.epochs", "an integer >= 1", int_at_least(1)),
    Rule("trainer.patience", "an integer >= 0, or null to disable", int_at_least(0), optional=True),
    Rule("trainer.max_steps_per_epoch", "an integer >= 1, or null for whole epochs", int_at_least(1), optional=True),
    Rule("trainer.label_smoothing", "a number in [0, 1)", number_in(0, 1)),
    Rule("trainer.grad_clip", "a number > 0, or null to disable", number_above(0), optional=True),
    Rule("trainer.device", "auto, cpu, cuda, cuda:N or mps", lambda v: isinstance(v, str) and
         bool(DEVICE_PATTERN.match(v))),
    Rule("trainer.progress_every", "an integer >= 1", int_at_least(1)),
    Rule("trainer.channels_last", TRUE_OR_FALSE, is_bool),
    Rule("trainer.amp", "auto, true or false", lambda v: v == "auto" or isinstance(v, bool)),
    Rule("trainer.resume", "null, auto or the path of a run directory or checkpoint", is_text, optional=True),
    Rule("trainer.deterministic", TRUE_OR_FALSE, is_bool),
    Rule("trainer.decay_norm_and_bias", TRUE_OR_FALSE, is_bool),
    Rule("trainer.devices", "an integer >= 1 (processes of a data-parallel run)", int_at_least(1)),
    Rule("trainer.sync_bn", TRUE_OR_FALSE, is_bool),
    Rule("trainer.compile", f"true, false or a torch.compile mode ({', '.join(COMPILE_MODES)})",
         lambda v: isinstance(v, bool) or one_of(*COMPILE_MODES)(v)),
    Rule("trainer.target_acc", "a number in (0, 1], or null", number_in(0, 1, low_open=True, high_open=False),
         optional=True),
    Rule("trainer.stop_at_target", TRUE_OR_FALSE, is_bool),
    Rule("trainer.ema_decay", "a number in (0, 1), or null to train without a moving average",
         number_in(0, 1, low_open=True), optional=True),
    Rule("trainer.tta", "one of none, flip", one_of("none", "flip")),
    Rule("trainer.log_graph", TRUE_OR_FALSE, is_bool),
    Rule("console.config", "one of diff, full, none", one_of("diff", "full", "none")),
    Rule("sweep.fail_fast", TRUE_OR_FALSE, is_bool),
    Rule("model.name", f"one of {', '.join(list_models())}", one_of(*list_models())),
    Rule("model.init", f"one of {', '.join(INIT_SCHEMES)}", one_of(*INIT_SCHEMES)),
    Rule("data.name", f"one of {', '.join(SOURCE_NAMES)}", one_of(*SOURCE_NAMES)),
    Rule("data.root", "a folder path", is_text),
    Rule("data.download", TRUE_OR_FALSE, is_bool),
    Rule("data.image_size", f"an integer in [1, {MAX_SIDE}]", int_at_least(1, MAX_SIDE)),
    Rule("data.in_chans", "an integer >= 1", int_at_least(1)),
    Rule("data.num_classes", "an integer >= 2", int_at_least(2)),
    Rule("data.batch_size", "an integer >= 1", int_at_least(1)),
    Rule("data.eval_batch_size", "an integer >= 1", int_at_least(1)),
    Rule("data.val_split", "a count >= 0 or a fraction in (0, 1)", is_count_or_fraction),
    Rule("data.split_seed", f"an integer in [0, {MAX_SEED}]", int_at_least(0, MAX_SEED)),
    Rule("data.resize", f"an integer in [1, {MAX_SIDE}], or null to keep the native size", int_at_least(1, MAX_SIDE),
         optional=True),
    Rule("data.augment", TRUE_OR_FALSE, is_bool),
    Rule("data.crop_padding", "an integer in [0, 16] (0: flip only)", int_at_least(0, 16)),
    Rule("data.permute_pixels", TRUE_OR_FALSE, is_bool),
    Rule("data.normalize", TRUE_OR_FALSE, is_bool),
    Rule("data.num_train", "an integer >= 1", int_at_least(1)),
    Rule("data.num_test", "an integer >= 1", int_at_least(1)),
    Rule("data.noise", "a number >= 0", number_at_least(0)),
    Rule("data.seed", f"an integer in [0, {MAX_SEED}]", int_at_least(0, MAX_SEED)),
    Rule("data.num_workers", "auto or an integer >= 0", lambda v: v == "auto" or int_at_least(0)(v)),
    Rule("data.random_erasing", "a probability in [0, 1]", number_in(0, 1, high_open=False)),
    Rule("data.mixup_alpha", "a number >= 0 (0: off)", number_at_least(0)),
    Rule("data.cutmix_alpha", "a number >= 0 (0: off)", number_at_least(0)),
    Rule("optimizer.lr", "a number > 0", number_above(0)),
    Rule("optimizer.momentum", "a number in [0, 1)", number_in(0, 1)),
    Rule("optimizer.weight_decay", "a number >= 0", number_at_least(0)),
    Rule("optimizer.nesterov", TRUE_OR_FALSE, is_bool),
    Rule("optimizer.betas", "two numbers in [0, 1), e.g. [0.9,0.999]", is_betas),
    Rule("scheduler.warmup_epochs", "a number >= 0", number_at_least(0)),
    Rule("scheduler.min_lr", "a number >= 0", number_at_least(0)),
    Rule("scheduler.step_epochs", "an integer >= 1", int_at_least(1)),
    Rule("scheduler.gamma", "a number in (0, 1]", number_in(0, 1, low_open=True, high_open=False)),
    Rule("scheduler.pct_start", "a number in (0, 1)", number_in(0, 1, low_open=True)),
    Rule("scheduler.div_factor", "a number > 0", number_above(0)),
    Rule("scheduler.final_div_factor", "a number > 0", number_above(0)),
    Rule("inspect.format", "one of table, json", one_of("table", "json")),
    Rule("reported.metric", "one of test/acc, val/acc_best", one_of("test/acc", "val/acc_best")),
    Rule("reported.value", "a number in [0, 1], or null", number_in(0, 1, high_open=False), optional=True),
    Rule("reported.by_model", "a mapping of model names to numbers in [0, 1]", lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and number_in(0, 1, high_open=False)(x) for k, x in v.items()), optional=True),
    Rule("reported.source", "a text saying where the number comes from", is_text, optional=True),
)
SECTIONS = ("model", "data", "optimizer", "scheduler", "trainer")
REPORTED_KEYS = ("metric", "value", "by_model", "source")  # what an experiment says its seed reported


FILLED_FROM_FOLDER = ("data.in_chans", "data.num_classes")  # null in image_folder.yaml until the folder is read

"""Command-line front door: checks the overrides before Hydra starts, so mistakes read as one line.

Hydra reports an unknown option or key with a multi-line message and a hint about HYDRA_FULL_ERROR;
here the same check runs first (a config composition per swept value, which costs milliseconds)
and prints `error: <key>: <what is allowed>` with exit code 2. Anything this check cannot judge is
left to Hydra.
"""

from __future__ import annotations

import atexit
import difflib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from . import CONF_DIR
from .distributed import launched_by_torchrun
from .launchers import missing_plugin

log = logging.getLogger(__name__)

VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
CUSTOM_CONFIG_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}
MODE_FLAGS = {"-r": "--run", "-m": "--multirun", "-c": "--cfg", "-i": "--info", "-sc": "--shell-completion"}


def split_overrides(argv: list[str]) -> list[str] | None:
    """The override arguments of a Hydra command line; None if it points at another config."""
    overrides, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in CUSTOM_CONFIG_FLAGS:
            return None
        if arg.startswith("-"):
            skip = arg in VALUE_FLAGS
            continue
        overrides.append(arg)
    return overrides


def candidate_override_sets(overrides: list[str]) -> list[list[str]]:
    """One override list per value of each sweep (others at their first value), without hydra.* keys.

    hydra/<group> choices (hydra/launcher=joblib) stay: a composition checks that they exist.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices: list[list[str]] = []
    for override in parsed:
        key = override.get_key_element()
        if key.lstrip("+~").startswith("hydra."):
            continue
        if override.is_sweep_override():
            try:
                values = list(override.sweep_string_iterator())
            except Exception:  # interval sweeps and the like: only a sweeper can expand them
                continue
            choices.append([f"{key}={value}" for value in values])
        else:
            choices.append([override.input_line])
    base = [values[0] for values in choices]
    sets = [base]
    for i, values in enumerate(choices):
        sets += [base[:i] + [value] + base[i + 1:] for value in values[1:]]
    return sets


def override_problem(argv: list[str], config_name: str = "config") -> str | None:
    """A one-line description of the first bad override on `argv`, or None when all compose."""
    overrides = split_overrides(argv) or []
    problem = mode_problem(argv) or missing_plugin(overrides)
    if problem or not overrides:
        return problem
    with initialize_config_dir(CONF_DIR, version_base=None):
        candidate: list[str] = []
        try:
            for candidate in candidate_override_sets(overrides):
                compose(config_name, overrides=candidate)
        except OverrideParseException as err:
            return str(err).splitlines()[0] + " (see https://hydra.cc/docs/advanced/override_grammar/basic)"
        except MissingConfigException as err:
            return _missing_option_message(err)
        except ConfigCompositionException as err:
            return _composition_message(err, lambda others: compose(config_name, overrides=others), candidate)
    return None


def mode_problem(argv: list[str]) -> str | None:
    """Hydra runs in one mode at a time, and raises a traceback for two (`-m ... --cfg hydra`)."""
    modes = list(dict.fromkeys(MODE_FLAGS.get(arg, arg) for arg in argv
                               if arg in MODE_FLAGS or arg in MODE_FLAGS.values()))
    if len(modes) < 2:
        return None
    return f"{modes[0]} and {modes[1]} cannot be combined; --cfg and --info show the config of a sweep without -m"


def _missing_option_message(err: MissingConfigException) -> str:
    group, _, option = (err.missing_cfg_file or "").rpartition("/")
    if err.options is None or not group:
        return str(err).splitlines()[0]
    hint = difflib.get_close_matches(option, err.options, n=1)
    suggestion = f" (did you mean {group}={hint[0]}?)" if hint else ""
    return f"{group}={option} is not an option of '{group}'{suggestion}; choose one of: {', '.join(err.options)}"


def _composition_message(err: ConfigCompositionException, compose_with: Callable[[list[str]], DictConfig],
                         overrides: list[str]) -> str:
    full_key = getattr(err.__cause__, "full_key", None)
    if not full_key:
        return str(err).splitlines()[0]
    parent, _, leaf = full_key.rpartition(".")
    # the keys that exist where the user aimed: the config as composed by the other overrides
    others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != full_key]
    try:
        base = compose_with(others)
    except Exception:
        base = compose_with([])
    node = OmegaConf.select(base, parent) if parent else base
    known = [str(k) for k in node] if isinstance(node, DictConfig) else []
    known = [k for k in known if k != "hydra"]
    hint = difflib.get_close_matches(leaf, known, n=1)
    suggestion = f" (did you mean {parent + '.' if parent else ''}{hint[0]}?)" if hint else ""
    where = f"keys under {parent}" if parent else "top-level keys"
    return f"{full_key} is not a config key{suggestion}; {where}: {', '.join(known)}"


def guarded(app: Callable[[], object], config_name: str = "config") -> None:
    problem = override_problem(sys.argv[1:], config_name)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    app()


def main() -> None:
    from .train import main as train_main

    if launched_by_torchrun() and os.environ["RANK"] != "0":
        sys.argv += scratch_run_dir()
    guarded(train_main)


def scratch_run_dir() -> list[str]:
    """Overrides that keep a torchrun rank other than 0 out of outputs/: rank 0 alone makes the run directory."""
    scratch = tempfile.mkdtemp(prefix=f"cnnbench-rank{os.environ['RANK']}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    return [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]

"""The command-line front door of every command: `python -m cnnbench` (training), `cnnbench.inspect`,
`cnnbench.evaluate` and `cnnbench.report`.

Before Hydra starts, the overrides are composed once per swept value (milliseconds), so that an unknown option
or key reads as one line `error: <key>: <what is allowed>` with exit code 2, where Hydra would print several
lines and a hint about HYDRA_FULL_ERROR. Anything this check cannot judge is left to Hydra. Every other
mistake a command meets (a bad value, a missing file) is a CnnbenchError: one line, its exit code, and the
traceback in the run's log.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import CONF_DIR
from .config import MOVED_KEYS, prepare_config, validate_config
from .errors import CnnbenchError, announce, as_cnnbench_error
from .runtime.distributed import scratch_run_dir_overrides
from .runtime.install import install_problem
from .runtime.overrides import command_line_overrides, parse_overrides, paths_as_values, single_value_sets
from .runtime.ownership import foreign_folder, foreign_sweep_folder, protected_folder
from .runtime.sweeps import missing_plugin

log = logging.getLogger(__name__)

# values read as plain paths, whatever characters they hold (a sweep job's folder, a path with spaces or quotes)
PATH_KEYS = ("trainer.resume", "hydra.run.dir", "hydra.sweep.dir")
MODE_FLAGS = {"-r": "--run", "-m": "--multirun", "-c": "--cfg", "-i": "--info", "-sc": "--shell-completion"}


def main(argv: list[str] | None = None) -> int:
    """`python -m cnnbench [overrides]`: train; the exit code."""
    from .train import main as train_main

    argv = paths_as_values(sys.argv[1:] if argv is None else list(argv), PATH_KEYS)
    return run_hydra_app(train_main, [*argv, *scratch_run_dir_overrides()])


def run_hydra_app(app: Callable[[], object], argv: list[str], config_name: str = "config") -> int:
    """Check the install and the overrides on `argv`, then run the @hydra.main function `app` with them; the exit
    code."""
    if broken := install_problem():
        print(f"error: {broken}", file=sys.stderr)
        return 1
    try:
        problem = override_problem(argv, config_name)
    except BaseException as err:  # a CnnbenchError, or Ctrl-C while the configs are read
        return announce(as_cnnbench_error(err), log)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    saved, sys.argv = sys.argv, [sys.argv[0], *argv]  # @hydra.main reads its command line from sys.argv
    try:
        app()
    except SystemExit as exit_:
        return exit_code(exit_)
    except KeyboardInterrupt as err:  # Ctrl-C twice in a sweep's launch: stop at once, in one line
        return announce(as_cnnbench_error(err), log, prefix="stopped")
    finally:
        sys.argv = saved
    return 0


def run_command(command: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    """A command that is not a Hydra app (report, evaluate): a CnnbenchError becomes one line; the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if broken := install_problem():
        print(f"error: {broken}", file=sys.stderr)
        return 1
    try:
        command(sys.argv[1:] if argv is None else list(argv))
    except BrokenPipeError:  # `... | head` stopped reading: end quietly, as command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except BaseException as err:  # any fault is one line; run with -X dev or read the log for the traceback
        return announce(as_cnnbench_error(err), log)
    return 0


def exit_code(exit_: SystemExit) -> int:
    code = exit_.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def override_problem(argv: list[str], config_name: str = "config") -> str | None:
    """A one-line description of the first problem of `argv`, or None: an override that does not compose, a run
    directory that cannot be made, or (in a sweep) any job's config that validation refuses, so that a sweep
    does not stop at its third job after training two."""
    lines = command_line_overrides(argv)
    overrides = parse_overrides(lines or [])
    problem = mode_problem(argv) or missing_plugin(overrides)
    if problem or lines is None:
        return problem
    multirun = "-m" in argv or "--multirun" in argv
    sets = single_value_sets(overrides)
    hydra_settings = [o.text for o in overrides if o.key.startswith("hydra.") and not o.sweep and not o.open_sweep]
    with initialize_config_dir(CONF_DIR, version_base=None):
        candidate: list[str] = []
        try:
            for i, candidate in enumerate(sets):
                first = i == 0  # composed with Hydra's own settings, to check where the run will write
                cfg = compose(config_name, overrides=[*candidate, *hydra_settings] if first else candidate,
                              return_hydra_config=first)
                problem = output_dir_problem(cfg.hydra, multirun, writes=config_name == "config") if first else None
                if problem:
                    return problem
                validate_config(cfg, root=config_name)  # before Hydra makes a folder: a refusal leaves none
                prepare_config(cfg, root=config_name)  # an image folder read, the model built on the meta device
        except MissingConfigException as err:
            return _missing_option_message(err)
        except ConfigCompositionException as err:
            if isinstance(err.__cause__, yaml.YAMLError):
                return f"a config file is not valid YAML ({' '.join(str(err.__cause__).split())[:200]})"
            return _composition_message(err, lambda others: compose(config_name, overrides=others), candidate)
        except yaml.YAMLError as err:
            return f"a config file is not valid YAML ({' '.join(str(err).split())[:200]})"
        except OmegaConfBaseException as err:  # an interpolation that cannot be resolved
            key = getattr(err, "full_key", None) or "a value"
            given = next((line for line in reversed(candidate) if line.split("=", 1)[0].lstrip("+~") == key), key)
            reason = str(err).splitlines()[0].split(" full_key:")[0]
            return f"{given} cannot be resolved ({reason}); give a plain value or an interpolation that resolves"
        except OSError as err:  # a group option too long for a file name, a config folder that cannot be read
            longest = max(candidate or [""], key=len)
            key, _, value = longest.partition("=")
            return (f"{key}=<{len(value)} characters> cannot be used ({err.strerror}): expected an option of "
                    f"'{key}' or a value of ordinary length")
        except CnnbenchError as err:
            swept = {o.key for o in overrides if o.sweep}
            job = " ".join(line for line in candidate if line.split("=", 1)[0].lstrip("+~") in swept)
            return f"{err} (in the sweep's job with {job}; no job has run)" if multirun and job else str(err)
    return None


def output_dir_problem(hydra_cfg: DictConfig, multirun: bool, writes: bool = True) -> str | None:
    """hydra.run.dir (hydra.sweep.dir) must be a folder, or be creatable: Hydra makes it before cnnbench runs; for a
    command that `writes` runs there, one that is cnnbench's or new (see runtime/ownership.py)."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        path = Path(str(OmegaConf.select(hydra_cfg, key.removeprefix("hydra.")))).expanduser()
    except Exception:  # an interpolation only Hydra's run time can resolve: Hydra checks it then
        return None
    if path.exists() and not path.is_dir():
        return f"{key}={path} is a file, not a directory; choose another {key}"
    problem = writes and (protected_folder(path) or (foreign_sweep_folder(path) if multirun else foreign_folder(path)))
    if problem:
        return f"{key}={path} {problem}; nothing was written there: choose a new or empty folder with {key}=<folder>"
    existing = next(parent for parent in [path, *path.parents] if parent.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{key}={path}: {existing.resolve()} is not writable; choose another {key} or fix the permissions"
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
    if full_key in MOVED_KEYS:
        return f"{full_key} is now {MOVED_KEYS[full_key]}: set that key instead"
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

"""The one reader of command-line overrides (`key=value`, `+key=value`, `~key`, `a=1,2,3` sweeps) for every command.

Hydra's own grammar decides what a line means (`parse_overrides`); what a run saved (`summary.json`'s
overrides, `.hydra/overrides.yaml`) is read back with `Override.from_text`, which needs no grammar.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic"
# Hydra's flags: those followed by a value, those naming another config (then cnnbench checks nothing)
VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
CUSTOM_CONFIG_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}


@dataclass(frozen=True)
class Override:
    key: str  # optimizer.lr, model, hydra/launcher: without the +, ++ or ~ in front
    value: str | None  # the text after '=', None for a deletion without a value
    text: str  # the argument as typed
    prefix: str = ""  # "", "+", "++" or "~"
    sweep: tuple[str, ...] | None = None  # the values of a sweep (a,b,c, choice(...), range(...)), else None
    open_sweep: bool = False  # a sweep only a sweeper can expand: interval(...), tag(log, interval(...))

    @classmethod
    def from_text(cls, text: str) -> Override:
        """`+key=value` -> key, value, prefix, by the text alone (for lines a run saved)."""
        head, sep, value = str(text).partition("=")
        bare = head.lstrip("+~")
        return cls(key=bare, value=value if sep else None, text=str(text), prefix=head[: len(head) - len(bare)])

    @property
    def is_hydra(self) -> bool:
        """hydra.run.dir=..., hydra/launcher=...: settings of Hydra itself, not of the experiment."""
        return self.key == "hydra" or self.key.startswith(("hydra.", "hydra/"))

    @property
    def is_deletion(self) -> bool:
        return self.prefix == "~"

    def with_value(self, value: str) -> str:
        return f"{self.prefix}{self.key}={value}"


def parse_overrides(lines: list[str]) -> list[Override]:
    """Overrides read with Hydra's grammar; a line it cannot read is a one-line ConfigError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(list(lines))
    except OverrideParseException as err:
        raise ConfigError(f"{str(err).splitlines()[0]} (see {GRAMMAR_URL})") from err
    overrides = []
    for hydra_override in parsed:
        plain = Override.from_text(hydra_override.input_line)
        sweep, open_sweep = None, False
        if hydra_override.is_sweep_override():
            try:
                sweep = tuple(hydra_override.sweep_string_iterator())
            except Exception:  # interval sweeps and the like: only a sweeper can expand them
                open_sweep = True
        overrides.append(Override(plain.key, plain.value, plain.text, plain.prefix, sweep, open_sweep))
    return overrides


def command_line_overrides(argv: list[str]) -> list[str] | None:
    """The override arguments of a Hydra command line (flags and their values left out); None if it names
    another config (--config-name and the like), which cnnbench does not check."""
    overrides, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.split("=", 1)[0] in CUSTOM_CONFIG_FLAGS:
            return None
        if arg.startswith("-"):
            skip = arg in VALUE_FLAGS
            continue
        overrides.append(arg)
    return overrides


def settings_of(lines: list[str]) -> dict[str, str]:
    """`["optimizer.lr=0.1", "+x=1", "~y", "hydra.run.dir=d"]` -> `{"optimizer.lr": "0.1", "x": "1"}`."""
    read = (Override.from_text(line) for line in lines)
    return {o.key: o.value for o in read if o.value is not None and not o.is_deletion and not o.is_hydra}


def single_value_sets(overrides: list[Override]) -> list[list[str]]:
    """One list of single-valued overrides per value of each sweep (the other keys at their first value),
    so that composing each list checks every value once; hydra.* keys and open sweeps are left out, while
    hydra/<group> choices (hydra/launcher=joblib) stay: a composition checks that they exist."""
    choices = []
    for override in overrides:
        if override.key.startswith("hydra.") or override.open_sweep:
            continue
        choices.append([override.with_value(v) for v in override.sweep] if override.sweep else [override.text])
    base = [values[0] for values in choices]
    sets = [base]
    for i, values in enumerate(choices):
        sets += [base[:i] + [value] + base[i + 1:] for value in values[1:]]
    return sets


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """A nested config as dotted keys, the way overrides name them: {"data.batch_size": 64, ...}; an empty
    section is a value of its own."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def get_dotted(tree: dict, dotted: str, default=None):
    """tree["a"]["b"] for "a.b"; `default` where a part is missing."""
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(tree: dict, dotted: str, value) -> None:
    """tree["a"]["b"] = value for "a.b", making the sections on the way."""
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def pop_dotted(tree: dict, dotted: str) -> None:
    """Remove "a.b" from tree if it is there."""
    *parents, leaf = dotted.split(".")
    parent = get_dotted(tree, ".".join(parents)) if parents else tree
    if isinstance(parent, dict):
        parent.pop(leaf, None)


# --- paths on the command line ---------------------------------------------------------------------------------

PATH_KEYWORDS = ("", "auto", "null", "None")
PLAIN_PATH = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._+-")


def hydra_quoted(text: str) -> str:
    """`text` as one quoted value of Hydra's grammar: `=`, `,`, spaces, quotes and brackets stay plain characters."""
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"


def as_path(value: str) -> Path:
    """A path as typed: the folder of that exact name if it exists (a folder may be named `~x`), else with `~`
    expanded; absolute, so that a run's records name it from anywhere."""
    path = Path(value)
    if not path.exists():
        path = path.expanduser()
    return path.absolute()


def paths_as_values(argv: list[str], keys: tuple[str, ...]) -> list[str]:
    """The command line with each `key=<path>` of `keys` rewritten so that Hydra reads the path as one plain value,
    whatever characters its name holds; keywords (auto, null), quoted values and interpolations stay as typed."""
    rewritten = []
    for arg in argv:
        head, sep, value = arg.partition("=")
        if sep and head.lstrip("+") in keys and value not in PATH_KEYWORDS and "${" not in value \
                and not (len(value) > 1 and value[0] == value[-1] and value[0] in "'\""):
            arg = f"{head}={hydra_quoted(str(as_path(value)))}"
        rewritten.append(arg)
    return rewritten


def path_argument(argv: list[str], key: str) -> tuple[list[Path], list[str]]:
    """`key=<path>` arguments taken as plain paths (before any grammar), and the other arguments."""
    paths = [as_path(arg.partition("=")[2]) for arg in argv if arg.startswith(f"{key}=") and len(arg) > len(key) + 1]
    others = [arg for arg in argv if not arg.startswith(f"{key}=")]
    return paths, others


def shell_command(*args: str) -> str:
    """A command as one line a shell runs as it is (each argument quoted where it needs it)."""
    return shlex.join(str(arg) for arg in args)


def path_value(path: Path) -> str:
    """A path as an override value: plain when it can be, else quoted for Hydra's grammar."""
    text = str(path)
    return text if set(text) <= PLAIN_PATH else hydra_quoted(text)

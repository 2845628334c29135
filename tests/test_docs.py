"""The docs are tested: every shell command in README.md and docs/*.md (code blocks, and `$ ` lines with the output
that follows them) is checked the way its tool would read it. A cnnbench command composes and passes validation (its
placeholders filled with a real run, a real sweep and a real image folder); a documented `error:` is the error the
tool prints; each script's flags parse."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from dataclasses import dataclass

import pytest

from cnnbench import cli, evaluate, export, predict, report
from tests.conftest import REPO, TINY_RUN, main_in_process

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_OURS = ("tensorboard", "pip", "pytest", "sudo", "apt-get", "cd", "source", "export", "ls", "cat", "git", "watch",
            "srun", "sbatch", "nvidia-smi", "python3", "tail", "bash", "sh")


@dataclass(frozen=True)
class Command:
    doc: str
    line: str
    printed: str | None  # the first line a `$ ` command is shown printing


def documented_commands() -> list[Command]:
    found = []
    for doc in DOCS:
        for lang, body in re.findall(r"```(\w*)\n(.*?)```", doc.read_text(), re.S):
            lines = body.replace("\\\n", " ").splitlines()
            for i, line in enumerate(lines):
                text = line.strip()
                if lang in ("bash", "sh", "shell") and text and not text.startswith("#"):
                    found.append(Command(doc.name, text, None))
                elif text.startswith("$ "):
                    after = lines[i + 1].strip() if i + 1 < len(lines) else ""
                    found.append(Command(doc.name, text[2:], after if not after.startswith("$ ") else None))
    return found


COMMANDS = documented_commands()


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """A finished run, a finished sweep and an image folder for the placeholders."""
    from tests.conftest import write_image_folder

    root = tmp_path_factory.mktemp("docs")
    mine = root / "my_results"  # the user's own folder of docs/reliability.md
    for name in (".hydra/config.yaml", "checkpoints/best.pt", "metrics.csv", "summary.json"):
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text("mine")
    assert main_in_process(*TINY_RUN, "trainer.epochs=1", "console.config=none", f"hydra.run.dir={root / 'run'}") == 0
    assert main_in_process("-m", *TINY_RUN, "trainer.epochs=1", "console.config=none", "optimizer.lr=0.1,0.2",
                           f"hydra.sweep.dir={root / 'sweep'}") == 0
    return {"run": root / "run", "sweep": root / "sweep", "images": write_image_folder(root / "images"), "root": root}


def filled(line: str, places: dict) -> str:
    for placeholder in ("<run dir>", "<run>", "<dir>", "<run_dir>", "<a run dir>"):
        line = line.replace(placeholder, str(places["run"]))
    for placeholder in ("<sweep dir>", "<sweep>", "<sweep_dir>"):
        line = line.replace(placeholder, str(places["sweep"]))
    line = re.sub(r"outputs/runs/\S*?(?=[\s/]|$)", str(places["run"]), line)
    line = re.sub(r"outputs/multiruns/(<timestamp>|[\w-]+)", str(places["sweep"]), line)
    if "cnnbench.report" in line:  # a folder another command of the docs fills: a sweep stands for it
        line = re.sub(r"(?<=\s)outputs/\S+", str(places["sweep"]), line)
    return re.sub(r"data\.root=\S+", f"data.root={places['images']}", line) if "image_folder" in line else line


def arguments(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    while words and "=" in words[0] and not words[0].startswith("-"):  # VAR=value before the command
        words = words[1:]
    return words


def check_cnnbench(words: list[str], printed: str | None) -> str | None:
    """The problem the front door finds in a `python -m cnnbench[...]` command line, or None."""
    module = words[2]
    args = words[3:]
    if module in ("cnnbench", "cnnbench.train"):
        return cli.override_problem(args)
    if module == "cnnbench.inspect":
        return cli.override_problem(args, "inspect")
    if module == "cnnbench.evaluate":
        run_dir, _, _ = evaluate.parse_args(args)
        return None if run_dir.is_dir() else f"{run_dir} is not a run"
    if module in ("cnnbench.predict", "cnnbench.export"):
        parse = predict.parse_args if module == "cnnbench.predict" else export.parse_args
        run_dir = parse(args)[0]
        return None if (run_dir / "checkpoints" / "best.pt").is_file() else f"{run_dir} has no best.pt"
    if module == "cnnbench.report":
        dirs, _ = report.parse_args(args)
        missing = [d for d in dirs if not d.is_dir()]
        return f"{missing[0]} is not a folder" if missing else None
    return f"unknown module {module}"


class Parsed(Exception):
    pass


def check_script(words: list[str], monkeypatch) -> None:
    """The script's own argparse reads the flags (the script stops right after)."""
    path = REPO / words[1]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    real = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [str(path), *words[2:]])
    with pytest.raises(Parsed):
        module.main()


def test_the_docs_show_commands(places):
    ours = [c for c in COMMANDS if arguments(filled(c.line, places))[:1] in (["python"], ["torchrun"])]
    assert len(ours) >= 40  # the walk sees them
    assert {c.doc for c in ours} >= {"README.md", "reliability.md", "scaling.md", "results.md"}


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.doc}:{c.line[:60]}" for c in COMMANDS])
def test_each_documented_command_works_as_written(command, places, monkeypatch):
    import cnnbench.config
    from cnnbench.runtime import sweeps

    monkeypatch.chdir(places["root"])
    monkeypatch.setattr(cnnbench.config, "usable_cores", lambda: 64)  # the docs' bigger machines
    if command.printed and "plugin: pip install" in command.printed:  # shown as a machine without the plugin
        monkeypatch.setattr(sweeps, "plugin_installed", lambda module: False)
    words = arguments(filled(command.line, places))
    if not words or words[0] in NOT_OURS:
        return
    if words[0] == "torchrun":  # torchrun [flags] -m cnnbench ...
        words = ["python", *words[words.index("-m"):]]
    if words[:2] == ["python", "-m"]:
        unfilled = [w for w in words if re.search(r"<[a-z][^>]*>", w)]
        assert not unfilled, f"{command.doc}: a placeholder the test cannot fill: {unfilled}"
        problem = check_cnnbench(words, command.printed)
        if command.printed and command.printed.startswith("error: "):
            expected = command.printed.removeprefix("error: ").replace("/home/me/", f"{places['root']}/")
            shown = expected.split("...")[0].rstrip(" ,")  # a doc may cut a long list short with ...
            assert problem is not None and problem.startswith(shown), (command.doc, problem, expected)
        else:
            assert problem is None, (command.doc, command.line, problem)
    elif words[0] == "python" and words[1].startswith("scripts/"):
        check_script(words, monkeypatch)
    else:
        pytest.fail(f"{command.doc}: a command this test does not know how to check: {command.line}")

"""Every path cnnbench prints works when pasted back: run= and trainer.resume= take any existing folder, whatever
characters its name holds; sweep job folders hold none of Hydra's special characters."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from cnnbench import evaluate
from cnnbench.runtime.job_labels import job_folder_name
from cnnbench.runtime.overrides import as_path, hydra_quoted, parse_overrides, path_argument, paths_as_values
from tests.conftest import TINY_RUN, main_in_process

ODD_NAMES = ["a=b", "a,b", "a b", "it's", 'say "hi"', "prüfung", "~x", "x~", "all of=them, 'ü' ~"]


@pytest.fixture(scope="module")
def printed_run(tmp_path_factory) -> tuple[Path, str]:
    """A finished run in a folder whose name holds every character at once, and the line it printed."""
    import contextlib
    import io

    run_dir = tmp_path_factory.mktemp("runs") / ODD_NAMES[-1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main_in_process(*TINY_RUN, "trainer.epochs=1", f"hydra.run.dir={run_dir}") == 0
    return run_dir, out.getvalue()


def printed_path(output: str) -> Path:
    """The run directory of the closing line (`...; results in <dir>; curves: ...`), read as bash reads it."""
    quoted = re.search(r"results in (.*); curves: ", output).group(1)
    (path,) = shlex.split(quoted)
    return Path(path)


def test_the_printed_run_dir_is_the_run_dir_and_the_printed_tensorboard_command_names_it(printed_run):
    run_dir, output = printed_run
    assert printed_path(output) == run_dir
    curves = shlex.split(re.search(r"curves: (.*)$", output, re.M).group(1))
    assert curves == ["tensorboard", "--logdir", str(run_dir)]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_evaluate_and_resume_take_a_folder_of_any_name(printed_run, tmp_path, name, cli_main, monkeypatch):
    run_dir, output = printed_run
    copy = tmp_path / name
    shutil.copytree(printed_path(output), copy)
    monkeypatch.chdir(tmp_path)
    typed = name if name.startswith("~") else str(copy)  # a folder named ~x, given relative to where one stands
    evaluated = cli_main(f"run={typed}", main=evaluate.main)
    assert evaluated.returncode == 0 and "test/acc" in evaluated.stdout, evaluated.stderr
    resumed = cli_main(f"trainer.resume={typed}", f"hydra.run.dir={tmp_path / 'launch'}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"the run in {copy} already finished" in resumed.stdout


def test_a_missing_folder_with_odd_characters_is_named_in_one_line(cli_main, tmp_path):
    missing = tmp_path / "no=such, dir"
    result = cli_main(f"trainer.resume={missing}", f"hydra.run.dir={tmp_path / 'launch'}")
    assert result.returncode == 2 and f"{missing} does not exist" in result.stderr
    evaluated = cli_main(f"run={missing}", main=evaluate.main)
    assert evaluated.returncode != 0 and str(missing) in evaluated.stderr and "Traceback" not in evaluated.stderr


@pytest.mark.parametrize("text", ["/a=b,c d'e ü ~x", "/x\\'y", "/back\\slash", "/end\\", '/q"d', "/t(x)[y]{z}"])
def test_hydra_quoted_values_read_back_as_the_same_text(text):
    (override,) = parse_overrides([f"trainer.resume={hydra_quoted(text)}"])
    from hydra.core.override_parser.overrides_parser import OverridesParser

    assert OverridesParser.create().parse_overrides([override.text])[0].value() == text


def test_only_path_keys_are_rewritten_and_keywords_stay(tmp_path):
    (tmp_path / "a=b").mkdir()
    argv = [f"trainer.resume={tmp_path / 'a=b'}", "trainer.resume=auto", "optimizer.lr=0.1,0.2",
            "hydra.run.dir=outputs/${now:%H}", "trainer.resume='quoted'"]
    rewritten = paths_as_values(argv, ("trainer.resume", "hydra.run.dir"))
    assert rewritten[0] == f"trainer.resume='{tmp_path}/a=b'"
    assert rewritten[1:] == argv[1:]


def test_path_argument_takes_the_text_after_the_key_as_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths, others = path_argument(["run=a=b, c", "data.split=val"], "run")
    assert paths == [tmp_path / "a=b, c"] and others == ["data.split=val"]
    assert as_path("~") == Path.home()


@pytest.mark.parametrize(("num", "overrides", "swept", "name"), [
    (3, ["optimizer.lr=0.1", "data.batch_size=256"], {"optimizer.lr": None, "data.batch_size": None},
     "3_lr-0.1_batch_size-256"),
    (0, ["model=resnet18", "seed=1"], {"model": None}, "0_model-resnet18"),
    (1, ["optimizer.lr=0.012345678901234567"], {"optimizer.lr": None}, "1_lr-0.01235"),
    (2, ["optimizer.lr=0.1", "scheduler.lr=2"], {"optimizer.lr": None, "scheduler.lr": None},
     "2_optimizer.lr-0.1_scheduler.lr-2"),
    (4, ["data.root='/a b'", "seed=3"], {}, "4_seed-3"),
    (5, ["+trainer.note='x,y=z'"], {"trainer.note": None}, "5_note-x_y_z"),
])
def test_job_folder_names_say_what_varies_without_special_characters(num, overrides, swept, name):
    assert job_folder_name(num, overrides, swept) == name


def test_a_sweep_job_folder_from_the_sweep_output_evaluates(tmp_path, cli_main):
    sweep = tmp_path / "sweep"
    result = cli_main("-m", *TINY_RUN, "trainer.epochs=1", "optimizer.lr=0.01,0.02", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0
    jobs = [Path(shlex.split(line.split(", run dir ", 1)[1])[0]) for line in result.stdout.splitlines()
            if ", run dir " in line]  # each job's header names its folder (its closing line is short)
    assert [job.name for job in jobs] == ["0_lr-0.01", "1_lr-0.02"]
    evaluated = cli_main(f"run={jobs[1]}", main=evaluate.main)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((sweep / "sweep.json").read_text())["jobs"][1]["folder"] == "1_lr-0.02"

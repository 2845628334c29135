"""The install check: a torch/torchvision pair that cannot work together is one line naming both versions and the
command that fixes it, for every command and for pytest (versions faked through the package metadata)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from cnnbench.errors import as_cnnbench_error
from cnnbench.runtime import install
from tests.conftest import one_line_error, process_env


def faked(monkeypatch, torch_version: str, vision_version: str | None) -> None:
    versions = {"torch": torch_version, "torchvision": vision_version}

    def version(package):
        if versions.get(package, "present") is None:
            raise metadata.PackageNotFoundError(package)
        return versions.get(package) or metadata.version(package)

    monkeypatch.setattr(install.metadata, "version", version)


@pytest.mark.parametrize(("torch_version", "vision_version", "fragments"), [
    ("2.13.0+cpu", "0.28.0", ["torch 2.13.0+cpu is a CPU-only build and torchvision 0.28.0 a default (PyPI) one",
                              '"torchvision==0.28.*" --index-url https://download.pytorch.org/whl/cpu']),
    ("2.14.1", "0.28.0", ["torchvision 0.28.0 belongs to torch 2.13, not torch 2.14.1", '"torchvision==0.29.*"']),
    ("2.14.1+cu126", "0.29.1+cu124", ["cu126 build and torchvision 0.29.1+cu124 a cu124 one", "/whl/cu126"]),
    ("2.14.1", None, ["torchvision is not installed beside torch 2.14.1"]),
])
def test_a_pair_that_cannot_work_is_one_line_with_the_fix(monkeypatch, torch_version, vision_version, fragments):
    faked(monkeypatch, torch_version, vision_version)
    problem = install.install_problem()
    assert problem is not None and "\n" not in problem
    for fragment in fragments:
        assert fragment in problem, (fragment, problem)


@pytest.mark.parametrize(("torch_version", "vision_version"), [("2.14.1", "0.29.1"), ("2.14.1+cpu", "0.29.0+cpu")])
def test_a_matching_pair_passes(monkeypatch, torch_version, vision_version):
    faked(monkeypatch, torch_version, vision_version)
    assert install.install_problem() is None


def test_every_command_refuses_a_broken_pair_before_it_starts(cli_main, monkeypatch, tmp_path):
    from cnnbench import report

    faked(monkeypatch, "2.13.0+cpu", "0.28.0")
    monkeypatch.chdir(tmp_path)
    one_line_error(cli_main("data=fashion_mnist"), "torch 2.13.0+cpu is a CPU-only build")
    one_line_error(cli_main(str(tmp_path), main=report.main), "torch 2.13.0+cpu is a CPU-only build")
    assert list(tmp_path.iterdir()) == []


def test_the_missing_operator_error_names_the_pair():
    err = as_cnnbench_error(RuntimeError("operator torchvision::nms does not exist"))
    assert str(err).startswith(f"torch {metadata.version('torch')} and torchvision {metadata.version('torchvision')} "
                               "cannot work together (operator torchvision::nms does not exist)")


def test_pytest_says_it_once(tmp_path):
    """A session over a stand-in test, with the versions faked as pip would have left them."""
    repo = install.__file__.rsplit("/cnnbench/", 1)[0]
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {repo!r})\nfrom importlib import metadata\nreal = metadata.version\n"
        "metadata.version = lambda p: {'torch': '2.13.0+cpu', 'torchvision': '0.28.0'}.get(p) or real(p)\n"
        "from tests.conftest import pytest_sessionstart  # noqa: F401\n")
    (tmp_path / "test_x.py").write_text("def test_a():\n    pass\n\ndef test_b():\n    pass\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                             str(tmp_path)], cwd=tmp_path, env=process_env(), capture_output=True, text=True)
    assert result.returncode == 4, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert output.count("torch 2.13.0+cpu is a CPU-only build") == 1 and "passed" not in output

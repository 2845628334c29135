"""Shared fixtures: configs composed through Hydra's compose API, the command line called in-process, tiny
datasets in torchvision's formats."""

from __future__ import annotations

import copy
import functools
import gzip
import hashlib
import logging
import os
import pickle
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from cnnbench import CONF_DIR, cli

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel test workers share the cores instead of each taking them all
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))))

# A run that takes a second or two on a CPU: LeNet-5 on a few hundred synthetic images.
TINY_RUN = ["model=lenet5", "data=synthetic", "data.num_train=400", "data.num_test=200", "data.batch_size=64",
            "trainer.epochs=2", "trainer.device=cpu"]
# Long enough epochs (19 steps) that an interruption can land in the middle of one.
RESUMABLE = [*TINY_RUN, "data.num_train=1300", "trainer.epochs=3", "trainer.deterministic=true",
             "data.augment=true", "trainer.patience=0"]


def pytest_sessionstart(session):
    """A torch/torchvision pair that cannot work together is said once, as `python -m cnnbench` says it, instead of
    failing every test that decodes an image."""
    from cnnbench.runtime.install import install_problem

    if (problem := install_problem()) is not None:
        print(f"error: {problem}", file=sys.stderr)
        pytest.exit("the tests cannot run without a working torch/torchvision pair (above)", returncode=4)


@pytest.fixture
def make_cfg(tmp_path):
    """compose(overrides) -> DictConfig with output_dir inside tmp_path, as `python -m cnnbench` would build."""

    def _make(overrides: list[str] = (), output_dir: Path | None = None) -> DictConfig:
        cfg = composed(tuple(overrides))
        with open_dict(cfg):
            cfg.output_dir = str(output_dir or tmp_path / "run")
        return cfg

    return _make


def composed(overrides: tuple[str, ...]) -> DictConfig:
    """Hydra's composition of `overrides`: the group choices (model=, data=, experiment=) composed by Hydra
    once per set of choices, the key=value overrides then applied as Hydra applies them (its grammar parses
    the value; + adds a key, a key the config lacks is an error). A compose takes 0.2 s; the suite needs
    hundreds of them, with a few dozen sets of choices."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    groups = tuple(o.input_line for o in parsed if "." not in o.key_or_group and not o.is_add())
    cfg = copy.deepcopy(_composed_choices(groups))
    for override in parsed:
        if override.input_line in groups:
            continue
        parent, _, leaf = override.key_or_group.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        known = list(node.keys()) if isinstance(node, DictConfig) else []  # `in` leaves out ??? (missing) values
        if not (override.is_add() or override.is_force_add() or leaf in known):
            raise AssertionError(f"{override.input_line}: Hydra refuses a key the config lacks (use +)")
        with open_dict(cfg):
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
    return cfg


@functools.cache
def _composed_choices(groups: tuple[str, ...]) -> DictConfig:
    with initialize_config_dir(CONF_DIR, version_base=None):
        return compose("config", overrides=list(groups))


@contextmanager
def hydra_cleaned_up():
    """A command run in-process leaves the run's log file and handlers bound to this test's streams behind; this
    removes them. (Hydra's own job config may stay: nothing below the command reads it.)"""
    before = {id(handler) for logger in _loggers() for handler in logger.handlers}
    try:
        yield
    finally:
        for logger in _loggers():  # the run's run.log, and handlers bound to this test's captured streams
            for handler in [h for h in logger.handlers if id(h) not in before]:
                logger.removeHandler(handler)
                handler.close()


def _loggers() -> list[logging.Logger]:
    named = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    return [logging.getLogger(), *named]


@pytest.fixture(autouse=True)
def no_system_datasets(request, monkeypatch):
    """Tests see only the dataset files they write; a test marked `real_data` also sees the system's packages."""
    if request.node.get_closest_marker("real_data") is None:
        from cnnbench.data import files

        monkeypatch.setattr(files, "SYSTEM_FOLDERS", {name: () for name in files.SYSTEM_FOLDERS})


@pytest.fixture(autouse=True)
def hydra_left_as_found():
    threads = torch.get_num_threads()  # a data-parallel or sweep run sets the threads of its process
    with hydra_cleaned_up():
        yield
    torch.set_num_threads(threads)


def main_in_process(*args: str, main=cli.main) -> int:
    """A command's exit code, run in this process (for module-scoped fixtures, where capsys is not available)."""
    with hydra_cleaned_up():
        return main(list(args))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli_main(capsys):
    """cli_main(*args, main=cnnbench.cli.main): a command's front door called in-process, as `python -m` calls it."""

    def _call(*args: str, main=cli.main) -> Result:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return _call


def one_line_error(result: Result, *fragments: str) -> str:
    """The one line a failed command printed on stderr (no traceback anywhere), checked for `fragments`."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def stopped_with_continue(result: Result, run_dir, *fragments: str) -> str:
    """A stopped run's two lines on stderr: what stopped where (with `fragments`), then `continue: <command>`, a
    command that bash reads as `python -m cnnbench trainer.resume=<run dir>`."""
    import shlex

    assert result.returncode != 0, result
    assert "Traceback" not in result.stdout + result.stderr
    first, last = [line for line in result.stderr.splitlines() if line.strip()]
    for fragment in fragments:
        assert fragment in first, (fragment, first)
    assert last.startswith("continue: ")
    assert shlex.split(last.removeprefix("continue: ")) == ["python", "-m", "cnnbench",
                                                            f"trainer.resume={Path(run_dir).absolute()}"]
    return first


def tb_events(run_dir, **size_guidance):
    """TensorBoard's own reader over a run's event files (in the run directory, or tensorboard/ in old runs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cnnbench.engine.writers import events_dir

    events = EventAccumulator(str(events_dir(Path(run_dir))), size_guidance=size_guidance or None)
    events.Reload()
    return events


def tb_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    events = tb_events(run_dir)
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@dataclass
class HParamsEntry:
    values: dict  # this session's hyperparameter values (a protobuf map: no order)
    status: int | None  # api_pb2.Status of the session's end; None while it runs


def hparams_of(run_dir) -> HParamsEntry:
    """A run's HParams session, read back through the hparams plugin's protos."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = tb_events(run_dir).PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in content  # TensorBoard builds the experiment over its whole logdir
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    values = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
              for key, value in session.session_start_info.hparams.items()}
    end = content.get("_hparams_/session_end_info")
    status = plugin_data_pb2.HParamsPluginData.FromString(end).session_end_info.status if end else None
    return HParamsEntry(values, status)


@dataclass
class Experiment:
    columns: list[str]
    differing: list[str]
    metrics: list[str]


def tb_experiment(logdir) -> Experiment:
    """The HParams experiment TensorBoard's own backend builds for `tensorboard --logdir <logdir>`: its columns,
    those it marks as differing, its metrics."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                                                            data_provider=provider))
    request = context.RequestContext()
    experiment = backend.experiment_from_metadata(request, "", True, backend.hparams_metadata(request, ""),
                                                  backend.hparams_from_data_provider(request, "", limit=None))
    infos = experiment.hparam_infos
    return Experiment([h.name for h in infos], [h.name for h in infos if h.differs],
                      [m.name.tag for m in experiment.metric_infos])


def process_env() -> dict[str, str]:
    """The environment of a process a test starts: this process's CPU threads (so that its numbers are
    bit-identical to a run made here), no warnings, Hydra's short errors."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


# --- tiny datasets written in the real on-disk formats -------------------------------------------------

def random_images(count: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, *shape), dtype=np.uint8), rng.integers(0, 10, count, dtype=np.uint8)


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    """IDX format of MNIST: magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.fixture
def mnist_root(tmp_path) -> Path:
    """<root>/MNIST/raw and <root>/FashionMNIST/raw with 300 train / 100 test random 28x28 images."""
    root = tmp_path / "datasets"
    for folder in ("MNIST", "FashionMNIST"):
        raw = root / folder / "raw"
        for prefix, count, seed in (("train", 300, 0), ("t10k", 100, 1)):
            images, labels = random_images(count, (28, 28), seed)
            write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture
def cifar_root(tmp_path, monkeypatch) -> Path:
    """<root>/cifar-10-batches-py with 5 x 40 train / 50 test random images in CIFAR's pickle format.

    torchvision checks each file's MD5 against the real archive's; the fixture points those checksums
    at the generated files, so torchvision's own integrity check and reader still run.
    """
    from torchvision.datasets import CIFAR10

    root = tmp_path / "datasets"
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        images, labels = random_images(50 if name == "test_batch" else 40, (3, 32, 32), seed=i)
        batch = {"data": images.reshape(len(images), -1), "labels": labels.tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes}, f)

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    monkeypatch.setattr(CIFAR10, "train_list", [[n, md5(n)] for n in names[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5("batches.meta")})
    return root


FOLDER_CLASSES = ("cat", "dog", "ship")


def write_image_folder(root: Path, counts: dict[str, int] | None = None, mode: str = "RGB",
                       size: tuple[int, int] = (20, 24), classes: tuple[str, ...] = FOLDER_CLASSES,
                       seed: int = 0) -> Path:
    """<root>/<split>/<class>/NNN.png, `counts[split]` images per class (default train 10, val 4) of `size`
    (width, height) in `mode` (RGB or L); each class is brighter than the one before, so it can be learned."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    for split, count in (counts or {"train": 10, "val": 4}).items():
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = (rng.integers(0, 96, (height, width, 3)) + 64 * k).astype(np.uint8)
                Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def image_folder_root(tmp_path) -> Path:
    """<root>/train and <root>/val: classes cat, dog, ship with 10 and 4 RGB PNGs of 20x24 pixels each."""
    return write_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory):
    """(run dir, summary) of RESUMABLE run without a stop: what every interrupted and resumed run must equal."""
    from cnnbench.train import run

    run_dir = tmp_path_factory.mktemp("uninterrupted")
    cfg = composed(tuple(RESUMABLE))
    with open_dict(cfg):
        cfg.output_dir = str(run_dir)
    return run_dir, run(cfg)

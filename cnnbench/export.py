"""`python -m cnnbench.export run=<run dir> format=onnx|torchscript [out=<file>]`: a trained run's best model as a
file anything can serve, checked before it is called done.

The model is written with a dynamic batch dimension (default `<run dir>/export/model.onnx` or `model.pt`), and what
it expects as input (channels, size, mean and std, class names, the run's fingerprint) goes into the file's metadata
and into `model.json` beside it. The export is then run on a batch of the run's test images (random inputs when the
data is not there) beside the PyTorch model: the largest difference of the logits and the top-1 agreement are
printed, and a difference above TOLERANCE fails in one line. ONNX goes through `torch.onnx.export` and is checked
with ONNX Runtime (`pip install -e ".[export]"`), both with a dynamic batch dimension; TorchScript through
`torch.jit.trace`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

import torch

from .cli import run_command
from .config import data_settings
from .data import build_data
from .errors import CnnbenchError, ConfigError
from .evaluate import Trained, load_trained
from .runtime.files import atomic_write, read_json
from .runtime.overrides import parse_overrides, path_argument
from .runtime.rundir import SUMMARY_FILE

USAGE = "usage: python -m cnnbench.export run=<run dir> format=onnx|torchscript [out=<file>]"
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
TOLERANCE = 1e-3  # the largest |logit difference| accepted between the export and the PyTorch model (float32)
CHECKED = 16  # images the export is checked on
INSTALL = 'pip install -e ".[export]"'


def parse_args(argv: list[str]) -> tuple[Path, str, Path | None]:
    runs, rest = path_argument(argv, "run")
    outs, rest = path_argument(rest, "out")
    if len(runs) != 1:
        raise ConfigError(USAGE)
    formats = [o.value for o in parse_overrides(rest) if o.key == "format"]
    others = [o.text for o in parse_overrides(rest) if o.key != "format"]
    if others:
        raise ConfigError(f"{others[0]} is not an option here; {USAGE}")
    if len(formats) != 1 or formats[0] not in FILES:
        given = f"format={formats[-1]} is not allowed: expected" if formats else "format= is required:"
        raise ConfigError(f"{given} one of {', '.join(FILES)}; {USAGE}")
    return runs[0], formats[0], outs[-1] if outs else None


def description(trained: Trained) -> dict:
    """What the exported model expects and what it is (the same for both formats): model.json, and the file's own
    metadata."""
    data = data_settings(trained.cfg)
    return {
        "model": trained.cfg.model.name, "dataset": data.name,
        "input": {"shape": ["batch", int(data.in_chans), data.input_size, data.input_size], "dtype": "float32",
                  "channels": int(data.in_chans), "size": data.input_size, "scaled_to": [0, 1],
                  "normalized": bool(data.normalize), "mean": list(data.mean or []), "std": list(data.std or [])},
        "output": "logits, one per class (softmax for probabilities)",
        "classes": trained.classes,
        "run": str(trained.run_dir.absolute()), "best_epoch": trained.epoch,
        "fingerprint": (read_json(trained.run_dir / SUMMARY_FILE) or {}).get("fingerprint"),
    }


def check_batch(trained: Trained) -> tuple[torch.Tensor, str]:
    """A batch of the run's test images as the model sees them, else random inputs of the right shape."""
    data = data_settings(trained.cfg)
    try:
        test = build_data(data, torch.device("cpu"), seed=0).test
        images, _ = next(iter(test.batches(None)))
        return images[:CHECKED].float().contiguous(), "test images"
    except Exception:  # the data is not on this machine (or cannot be read): the shape is all the check needs
        generator = torch.Generator().manual_seed(0)
        return torch.randn(CHECKED, int(data.in_chans), data.input_size, data.input_size, generator=generator), \
            "random inputs"


@contextlib.contextmanager
def quiet():
    """The exporters' console chatter and deprecation notices (torch.jit is deprecated in favour of torch.export,
    but TorchScript is still what libtorch and TorchServe load) kept off the command's output."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, out: Path, meta: str):
    with quiet():
        traced = torch.jit.trace(model, example[:2], check_trace=False)
        atomic_write(out, lambda tmp: torch.jit.save(traced, tmp, _extra_files={"model.json": meta}))
        loaded = torch.jit.load(str(out))

    def run(x: torch.Tensor) -> torch.Tensor:
        with quiet():
            return loaded(x)

    return run


def export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, meta: str):
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise ConfigError(f"format=onnx needs onnx and onnxruntime ({err.name} is not installed): {INSTALL}") from err

    def write(tmp: str) -> None:
        with quiet():  # the exporter's progress lines go to run-free silence; its errors still raise
            torch.onnx.export(model, (example[:2],), tmp, input_names=["images"], output_names=["logits"],
                              dynamic_shapes=({0: torch.export.Dim("batch")},), dynamo=True, verbose=False)
        proto = onnx.load(tmp)  # with any weights the exporter wrote beside it: kept in the one file
        for extra in Path(tmp).parent.glob(f"{Path(tmp).name}*.data"):
            extra.unlink()
        for key, value in {"cnnbench": meta, **{k: str(v) for k, v in json.loads(meta).items()
                                                if k in ("model", "dataset", "fingerprint")}}.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

    atomic_write(out, write)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])


def export_command(argv: list[str]) -> dict:
    if any(arg in ("-h", "--help") for arg in argv):
        print(f"{USAGE}\n\n{__doc__.strip()}")
        return {}
    run_dir, fmt, out = parse_args(argv)
    trained = load_trained(run_dir, ["trainer.device=cpu", "trainer.devices=1"])  # float32 on the CPU, one process
    model = trained.model.float().to(memory_format=torch.contiguous_format).eval()
    out = out or run_dir / "export" / FILES[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    described = description(trained)
    meta = json.dumps(described, indent=1)
    images, origin = check_batch(trained)
    exporter = export_onnx if fmt == "onnx" else export_torchscript
    try:
        with torch.no_grad():
            exported = exporter(model, images, out, meta)
            expected, got = model(images), exported(images)
    except CnnbenchError:
        raise
    except Exception as err:  # the exporter's own reason names the layer or operator it could not take
        raise CnnbenchError(f"{trained.cfg.model.name} cannot be exported to {fmt}: {type(err).__name__}: "
                            f"{' '.join(str(err).split())[:240]}") from err
    difference = float((expected - got.float()).abs().max())
    agreement = int((expected.argmax(1) == got.argmax(1)).sum())
    atomic_write(out.with_name("model.json"), lambda tmp: Path(tmp).write_text(meta + "\n"))
    line = (f"checked on {len(images)} {origin}: max |logit difference| {difference:.2e} (tolerance "
            f"{TOLERANCE:g}), top-1 agreement {agreement}/{len(images)}")
    if difference > TOLERANCE:
        raise CnnbenchError(f"the {fmt} export of {trained.cfg.model.name} does not match the PyTorch model: {line}; "
                            f"{out} is left for inspection")
    print(f"exported {trained.cfg.model.name} (best epoch {trained.epoch}) to {out.absolute()}; {line}; its input is "
          f"described in {out.with_name('model.json').absolute()}")
    return {**described, "max_abs_difference": difference, "top1_agreement": agreement / len(images)}


def main(argv: list[str] | None = None) -> int:
    return run_command(export_command, argv)


if __name__ == "__main__":
    sys.exit(main())

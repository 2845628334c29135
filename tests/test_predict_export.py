"""Using what a run trained: `cnnbench.predict` on image files, folders and globs (the run's own preprocessing, an
unreadable file as one row, the accuracy of a class-folder layout, inverted photos for the dark-background
datasets), and `cnnbench.export` to TorchScript and ONNX, checked against the PyTorch model."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnbench import export, predict
from cnnbench.data.single import light_border, load_image
from cnnbench.evaluate import load_trained
from tests.conftest import TINY_RUN, main_in_process, one_line_error, write_image_folder

FOLDER_RUN = ["model=lenet5", "data=image_folder", "data.image_size=16", "data.batch_size=8", "trainer.epochs=2",
              "trainer.device=cpu", "console.config=none"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run on an RGB image folder (classes cat, dog, ship) and one on the built-in digits."""
    root = tmp_path_factory.mktemp("trained")
    images = write_image_folder(root / "images")
    assert main_in_process(*FOLDER_RUN, f"data.root={images}", f"hydra.run.dir={root / 'folder_run'}") == 0
    assert main_in_process("model=lenet5", "data=digits", "trainer.epochs=1", "trainer.device=cpu",
                           "console.config=none", f"hydra.run.dir={root / 'digits_run'}") == 0
    return {"folder": root / "folder_run", "digits": root / "digits_run", "images": images, "root": root}


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_class_folder_is_predicted_with_its_accuracy_and_an_unreadable_file_is_one_row(cli_main, runs, tmp_path):
    import shutil

    folder = tmp_path / "photos"
    shutil.copytree(runs["images"] / "val", folder)
    (folder / "dog" / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.full((30, 40), 200, np.uint8), "L").save(folder / "ship" / "gray.jpg")  # L, other size, JPEG
    out = tmp_path / "out.csv"
    result = cli_main(f"run={runs['folder']}", f"images={folder}", "topk=2", f"out={out}", main=predict.main)
    assert result.returncode == 0, result.stderr
    rows = rows_of(out)
    assert len(rows) == 3 * 4 + 2 and all(row["path"].startswith("/") for row in rows)
    broken = next(row for row in rows if row["path"].endswith("broken.png"))
    assert broken["class_name"] == "" and "not a readable image" in broken["error"]
    good = [row for row in rows if not row["error"]]
    assert all(row["class_name"] in ("cat", "dog", "ship") and len(row["top_k"].split(";")) == 2 for row in good)
    assert all(0 < float(row["probability"]) <= 1 for row in good)
    assert "accuracy against the class folders" in result.stdout and "wrote" in result.stdout


def test_predict_takes_one_file_or_a_glob_and_writes_into_the_run_by_default(cli_main, runs):
    one = runs["images"] / "val" / "cat" / "000.png"
    assert cli_main(f"run={runs['folder']}", f"images={one}", main=predict.main).returncode == 0
    rows = rows_of(runs["folder"] / "predictions.csv")
    assert [row["path"] for row in rows] == [str(one)] and len(rows[0]["top_k"].split(";")) == 3
    pattern = str(runs["images"] / "val" / "*" / "00[01].png")
    assert cli_main(f"run={runs['folder']}", f"images={pattern}", main=predict.main).returncode == 0
    assert len(rows_of(runs["folder"] / "predictions.csv")) == 6


def test_a_photo_on_white_is_inverted_for_the_dark_background_datasets(runs, tmp_path):
    pixels = np.full((64, 64), 255, np.uint8)
    pixels[16:48, 28:36] = 0  # a dark stroke on white paper
    Image.fromarray(pixels, "L").save(tmp_path / "one.png")
    assert light_border(Image.open(tmp_path / "one.png"))
    auto = load_image(tmp_path / "one.png", 1, 28, "digits", "auto")
    assert auto[0, 0, 0] == 0 and auto[0, 14, 14] > 200  # inverted: black border, light stroke
    kept = load_image(tmp_path / "one.png", 1, 28, "digits", "false")
    assert kept[0, 0, 0] == 255
    assert load_image(tmp_path / "one.png", 3, 16, "cifar10", "auto").shape == (3, 16, 16)  # grayscale to RGB


@pytest.mark.parametrize(("args", "fragment"), [
    (["images=nowhere/*.png"], "images=nowhere/*.png matches no image file"),
    (["images=x.png", "topk=0"], "topk=0 is not allowed: expected an integer >= 1"),
    (["images=x.png", "predict.invert=maybe"], "predict.invert=maybe is not allowed"),
    (["images=x.png", "model=vgg11"], "model=vgg11 is not an option here"),
])
def test_predict_refuses_bad_input_in_one_line(cli_main, runs, tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.png").write_bytes(b"")
    one_line_error(cli_main(f"run={runs['folder']}", *args, main=predict.main), fragment)


def test_a_run_without_best_pt_is_one_line(cli_main, tmp_path):
    (tmp_path / "run").mkdir()
    one_line_error(cli_main(f"run={tmp_path / 'run'}", f"images={tmp_path}", main=predict.main),
                   f"run={tmp_path / 'run'} has no checkpoints/best.pt")
    one_line_error(cli_main(f"run={tmp_path / 'run'}", "format=onnx", main=export.main), "has no checkpoints/best.pt")


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load, in the test itself
def test_torchscript_export_runs_any_batch_and_describes_its_input(cli_main, runs):
    result = cli_main(f"run={runs['folder']}", "format=torchscript", main=export.main)
    assert result.returncode == 0, result.stderr
    out = runs["folder"] / "export" / "model.pt"
    assert "top-1 agreement" in result.stdout and "random inputs" not in result.stdout  # its own test images
    described = json.loads((out.parent / "model.json").read_text())
    assert described["classes"] == ["cat", "dog", "ship"] and described["input"]["shape"] == ["batch", 3, 16, 16]
    files = {"model.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["model.json"])["model"] == "lenet5"
    assert loaded(torch.zeros(5, 3, 16, 16)).shape == (5, 3)


def test_onnx_export_is_checked_with_onnx_runtime(cli_main, runs, tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed (pip install -e '.[export]')")
    import onnx
    import onnxruntime

    out = tmp_path / "digits.onnx"
    result = cli_main(f"run={runs['digits']}", "format=onnx", f"out={out}", main=export.main)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert "top-1 agreement 16/16" in line and "max |logit difference|" in line
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["cnnbench"])["input"]["mean"] == [0.1559] and props["model"] == "lenet5"
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(["logits"], {"images": np.zeros((3, 1, 28, 28), np.float32)})[0].shape == (3, 10)


def test_the_docs_onnx_runtime_example_classifies_as_predict_does(cli_main, runs, tmp_path, capsys):
    """docs/using.md's ten lines, run on an exported run and one image: the class predict gives."""
    import re

    from tests.conftest import REPO

    pytest.importorskip("onnxruntime", reason="the export extra is not installed")
    out = tmp_path / "model.onnx"
    assert cli_main(f"run={runs['folder']}", "format=onnx", f"out={out}", main=export.main).returncode == 0
    image = runs["images"] / "val" / "ship" / "001.png"
    assert cli_main(f"run={runs['folder']}", f"images={image}", main=predict.main).returncode == 0
    expected = rows_of(runs["folder"] / "predictions.csv")[0]["class_name"]
    code = re.search(r"```python\n(.*?)```", (REPO / "docs" / "using.md").read_text(), re.S).group(1)
    code = code.replace("outputs/runs/<timestamp>/export/model.onnx", str(out)).replace("shoe.jpg", str(image))
    capsys.readouterr()
    exec(compile(code, "docs/using.md", "exec"), {})
    assert capsys.readouterr().out.strip() == expected


def test_onnx_without_its_packages_names_the_install_command(cli_main, runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it fails, as when it is not installed
    one_line_error(cli_main(f"run={runs['digits']}", "format=onnx", main=export.main),
                   'pip install -e ".[export]"')


def test_export_refuses_an_unknown_format_in_one_line(cli_main, runs):
    one_line_error(cli_main(f"run={runs['digits']}", "format=tflite", main=export.main),
                   "format=tflite is not allowed: expected one of onnx, torchscript")


def test_a_tiny_synthetic_run_predicts_its_class_names(cli_main, tmp_path):
    assert main_in_process(*TINY_RUN, "trainer.epochs=1", "console.config=none",
                           f"hydra.run.dir={tmp_path / 'run'}") == 0
    Image.fromarray(np.zeros((28, 28), np.uint8), "L").save(tmp_path / "blank.png")
    assert cli_main(f"run={tmp_path / 'run'}", f"images={tmp_path / 'blank.png'}", main=predict.main).returncode == 0
    assert rows_of(tmp_path / "run" / "predictions.csv")[0]["class_name"].startswith("class_")


def test_predict_on_the_test_images_agrees_with_evaluate(runs, tmp_path, capsys):
    """The digits run's own test images, written as PNG files in class folders: predict's accuracy is evaluate's."""
    from rich.console import Console

    from cnnbench.config import data_settings
    from cnnbench.data.sources import load_source
    from cnnbench.evaluate import evaluate_run

    trained = load_trained(runs["digits"])
    source = load_source(data_settings(trained.cfg))
    folder = tmp_path / "digits"
    for i, (image, label) in enumerate(zip(source.test.images, source.test.labels, strict=True)):
        (folder / str(int(label))).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0].numpy(), "L").save(folder / str(int(label)) / f"{i:03d}.png")
    predictions = predict.predict_command([f"run={runs['digits']}", f"images={folder}", f"out={tmp_path / 'p.csv'}"])
    accuracy = predict.show_accuracy(predictions, trained.classes, Console(file=None, quiet=True))["accuracy"]
    evaluated = evaluate_run(runs["digits"], [], Console(quiet=True))
    assert len(predictions) == 360 and accuracy == pytest.approx(evaluated["test/acc"], abs=1e-9)


def test_a_photo_sized_rgb_image_and_its_negative_go_through(cli_main, runs, tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(photo, "RGB").save(tmp_path / "photo.jpg")
    Image.fromarray(255 - photo, "RGB").save(tmp_path / "negative.webp")
    result = cli_main(f"run={runs['digits']}", f"images={tmp_path}", main=predict.main)
    assert result.returncode == 0, result.stderr
    rows = rows_of(runs["digits"] / "predictions.csv")
    assert sorted(row["path"].rsplit("/", 1)[1] for row in rows) == ["negative.webp", "photo.jpg"]
    assert all(row["class_name"] in [str(d) for d in range(10)] and not row["error"] for row in rows)

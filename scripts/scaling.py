"""Data-parallel scaling: the same run with 1, 2, ... processes (`trainer.devices`), images/s side by side.

    python scripts/scaling.py                                  # LeNet, Fashion-MNIST-shaped synthetic data, CPU
    python scripts/scaling.py --model resnet18 --devices 1 2 --epochs 2 --num-train 12000
    python scripts/scaling.py --device cuda --devices 1 2 4 8  # one GPU per process

Each run is `python -m cnnbench` as a user starts it; the figure is the run's own `throughput/train_examples_per_s`
(summary.json: training images per second over the epochs after the first). Writes --json as well.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_once(args: argparse.Namespace, devices: int, run_dir: Path) -> dict:
    command = [
        sys.executable, "-m", "cnnbench", f"model={args.model}", "data=synthetic", f"data.num_train={args.num_train}",
        "data.num_test=1000", "data.image_size=28", "trainer.progress_every=50", f"data.batch_size={args.batch_size}",
        f"trainer.epochs={args.epochs}", "trainer.patience=0", f"trainer.device={args.device}",
        f"trainer.devices={devices}", f"hydra.run.dir={run_dir}", *args.overrides,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"run with trainer.devices={devices} failed:\n{result.stderr[-2000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"devices": devices, "images_per_s": summary["throughput/train_examples_per_s"],
            "wall_s": summary["time/wall_s"], "test_acc": summary["test/acc"]}


def median_run(runs: list[dict]) -> dict:
    """The run with the median images/s (the lower middle one of an even count)."""
    ranked = sorted(runs, key=lambda row: row["images_per_s"])
    return {**ranked[(len(ranked) - 1) // 2], "rounds": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-train", type=int, default=60000, help="Fashion-MNIST's training set size")
    parser.add_argument("--batch-size", type=int, default=256, help="the global batch, split across processes")
    parser.add_argument("--epochs", type=int, default=3, help="the first epoch is warm-up and not timed")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the median is reported")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    parser.add_argument("overrides", nargs="*", help="more cnnbench overrides, e.g. optimizer.lr=0.1")
    args = parser.parse_args()
    measured: dict[int, list[dict]] = {devices: [] for devices in args.devices}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):  # interleaved, so a busy spell of a shared machine hits every setting
            for devices in args.devices:
                measured[devices].append(run_once(args, devices, Path(scratch) / f"r{round_}-devices{devices}"))
    rows = [median_run(runs) for runs in measured.values()]
    base = rows[0]["images_per_s"]
    print(f"{args.model}, batch {args.batch_size}, {args.num_train:,} images of 1x28x28, device {args.device}")
    print(f"{'processes':>9} {'train img/s':>12} {'speed-up':>9} {'wall s':>8} {'test/acc':>9}")
    for row in rows:
        row["speedup"] = row["images_per_s"] / base
        print(f"{row['devices']:>9} {row['images_per_s']:>12,.0f} {row['speedup']:>8.2f}x {row['wall_s']:>8.1f} "
              f"{row['test_acc']:>9.4f}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "device": args.device, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

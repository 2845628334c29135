"""Time to accuracy on the real Fashion-MNIST: seed 001's LeNet-5 recipe through its own DataLoader loop against
cnnbench's presets, each a whole command (start-up, data, training, the final test) timed from its launch,
interleaved over rounds (round r uses seed r-1), on the same files.

  seeds        seed 001's section-10 recipe on its LeNet-5 (scripts/seed_loops.py: ToTensor + Normalize, flip +
               crop, 54,000/6,000 split, SGD nesterov, label smoothing 0.1, clip 1.0, cosine over 50 epochs,
               patience 10), validation accuracy after every epoch, the best epoch's weights tested at the end;
               stopped after the first epoch that ends past --seed-budget-s (its 50 epochs take most of an hour
               on 2 CPU cores), which the output says
  <preset>     python -m cnnbench experiment=<preset> (any other name in --ways), its run directory kept under
               --out/<preset>/seed<k>

Prints, per run and as mean ± std per way, the seconds until the validation accuracy first reached each target,
the final test accuracy and the whole command's wall time; writes them as JSON.

    python scripts/time_to_accuracy.py [--rounds 3] [--ways seeds,fmnist_seed001,fmnist_fast_cpu]
                                       [--targets 0.90,0.91,0.92,0.93] [--seed-budget-s 300]
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def seeds_child(args) -> None:
    """Seed 001's loop, printing one JSON line per epoch (wall clock) and one with the test accuracy."""
    import seed_loops
    import torch

    from cnnbench.data.files import find
    from cnnbench.models import create_model

    found, _ = find("fashion_mnist", args.data_root or "data")
    if found is None:
        sys.exit("the real Fashion-MNIST was not found (apt-get install dataset-fashion-mnist, or --data-root)")
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as scratch:
        root = seed_loops.prepare_root(found.folder, Path(scratch))
        train, val, test = seed_loops.loaders("seed001", root, 128, args.workers, augment=True)
        model = create_model("lenet5").to(device)
        optimizer = seed_loops.optimizer_for("seed001", model, lr=0.1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=1e-4)
        step = seed_loops.training_step("seed001", model, optimizer, device)
        best, best_state, waited = -1.0, None, 0
        started = time.time()
        for epoch in range(1, args.epochs + 1):
            if args.budget_s and time.time() - started > args.budget_s:
                print(json.dumps({"stopped_after_epoch": epoch - 1}), flush=True)
                break
            model.train()
            for x, y in train:
                step(x, y)
            scheduler.step()
            acc = seed_loops.accuracy(model, val, device)
            print(json.dumps({"epoch": epoch, "val_acc": acc, "time": time.time()}), flush=True)
            if acc > best:
                best, best_state, waited = acc, copy.deepcopy(model.state_dict()), 0
            else:
                waited += 1
                if waited >= 10:
                    break
        model.load_state_dict(best_state)
        print(json.dumps({"test_acc": seed_loops.accuracy(model, test, device), "time": time.time()}), flush=True)


def run_seeds(seed: int, args) -> dict:
    command = [sys.executable, __file__, "--child-seeds", "--seed", str(seed), "--epochs", str(args.seed_epochs),
               "--workers", str(args.workers), "--budget-s", str(args.seed_budget_s),
               *(["--data-root", str(args.data_root)] if args.data_root else [])]
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO / "scripts")
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"the seeds' loop failed: {done.stderr.strip().splitlines()[-1:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    curve = [(line["time"] - launched, line["val_acc"]) for line in lines if "val_acc" in line]
    stopped = next((line["stopped_after_epoch"] for line in lines if "stopped_after_epoch" in line), None)
    return {"way": "seeds", "seed": seed, "curve": curve, "test_acc": lines[-1]["test_acc"], "wall_s": ended - launched,
            "stopped_after_epoch": stopped}


def run_preset(preset: str, seed: int, args) -> dict:
    run_dir = args.out / preset / f"seed{seed}"
    if run_dir.exists():
        sys.exit(f"{run_dir} exists: pass another --out")
    command = [sys.executable, "-m", "cnnbench", f"experiment={preset}", f"seed={seed}", "data.download=false",
               f"hydra.run.dir={run_dir}", *([f"data.root={args.data_root}"] if args.data_root else [])]
    launched = time.time()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[2:4])} failed: {(done.stdout + done.stderr).strip().splitlines()[-1:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    start_up = (ended - launched) - summary["time/wall_s"]  # before run() started its clock, and the exit after
    curve = [(start_up + float(row["time/elapsed_s"]), float(row["val/acc"])) for row in rows]
    return {"way": preset, "seed": seed, "curve": curve, "test_acc": summary["test/acc"], "wall_s": ended - launched,
            "run_dir": str(run_dir)}


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((seconds for seconds, acc in curve if acc >= target), None)


def summarise(results: list[dict], targets: list[float]) -> dict:
    table = {}
    for way in dict.fromkeys(r["way"] for r in results):
        runs = [r for r in results if r["way"] == way]
        row = {"runs": len(runs)}
        for target in targets:
            times = [time_to(r["curve"], target) for r in runs]
            reached = [t for t in times if t is not None]
            row[f"to_{target:.2f}"] = {"mean": statistics.mean(reached) if reached else None,
                                       "std": statistics.stdev(reached) if len(reached) > 1 else 0.0,
                                       "reached": f"{len(reached)}/{len(runs)}"}
        for key in ("test_acc", "wall_s"):
            values = [r[key] for r in runs]
            row[key] = {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        table[way] = row
    return table


def show(value: dict, digits: int = 1, unit: str = "") -> str:
    """`123.4 ± 5.6s`, with `(2/3)` when not every run reached the target; `never (0/3)` when none did."""
    reached = value.get("reached")
    if value["mean"] is None:
        return f"never ({reached})"
    partly = reached and reached.split("/")[0] != reached.split("/")[1]
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}{unit}" + (f" ({reached})" if partly else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ways", default="seeds,fmnist_seed001,fmnist_fast_cpu",
                        help="seeds (seed 001's own loop) and any experiment presets")
    parser.add_argument("--targets", default="0.90,0.91,0.92,0.93")
    parser.add_argument("--seed-epochs", type=int, default=50, help="the seeds' schedule length (its own: 50)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the seeds' loop (its own: 2)")
    parser.add_argument("--seed-budget-s", type=float, default=300.0,
                        help="stop the seeds' loop after the first epoch that ends past this many seconds (0: never)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "time_to_accuracy",
                        help="where the presets' run directories are kept")
    parser.add_argument("--json", type=Path, default=REPO / "outputs" / "time_to_accuracy.json")
    parser.add_argument("--child-seeds", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=50, help=argparse.SUPPRESS)
    parser.add_argument("--budget-s", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_seeds:
        seeds_child(args)
        return 0
    targets = [float(t) for t in args.targets.split(",")]
    results = []
    for round_ in range(args.rounds):  # interleaved: a slow spell of a shared machine hits both ways
        for way in args.ways.split(","):
            result = run_seeds(round_, args) if way == "seeds" else run_preset(way, round_, args)
            results.append(result)
            times = [time_to(result["curve"], t) for t in targets]
            reached = ", ".join(f"{t:.2f}: {'-' if s is None else f'{s:.1f}'}"
                                for t, s in zip(targets, times, strict=True))
            stopped = result.get("stopped_after_epoch")
            print(f"round {round_ + 1} {way} seed {round_}: seconds to val/acc {reached}; test/acc "
                  f"{result['test_acc']:.4f}; wall {result['wall_s']:.1f}s"
                  + (f" (stopped after epoch {stopped}: --seed-budget-s)" if stopped else ""), flush=True)
    table = summarise(results, targets)
    print(f"\nmean ± std over {args.rounds} seeds")
    for way, row in table.items():
        cells = "  ".join(f"{t:.2f}: {show(row[f'to_{t:.2f}'], unit='s')}" for t in targets)
        print(f"{way}  {cells}  test/acc {show(row['test_acc'], 4)}  wall {show(row['wall_s'], unit='s')}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    saved = {"ways": args.ways.split(","), "targets": targets, "seed_budget_s": args.seed_budget_s,
             "runs": results, "summary": table}
    args.json.write_text(json.dumps(saved, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# The GPU check: throughput against the seeds' loops, the main job on the real Fashion-MNIST, evaluation's share of
# the wall time, and an interrupted-and-resumed run on CUDA, in one command; every figure lands in OUT_DIR as JSON
# and text. It stops at the first failure, with the error.
#
#   scripts/gpu_check.sh OUT_DIR              # on a CUDA machine (about 6-8 minutes on an H100/H200-class GPU)
#   scripts/gpu_check.sh OUT_DIR --dry-run    # the same steps on the CPU, a few steps each (minutes)
#
# Without hydra-core/omegaconf on the machine, the wheels in gpu_bundle/wheels/ are installed (no network needed);
# the real data is read from gpu_bundle/fashion-mnist/ when present, else where cnnbench finds it.
set -euo pipefail

OUT=${1:?usage: scripts/gpu_check.sh OUT_DIR [--dry-run]}
DRY=${2:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$REPO"
PY=${PYTHON:-python3}  # PYTHON=.venv/bin/python for a dry run in this checkout's environment
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONWARNINGS=ignore
LOG="$OUT/gpu_check.log"
step() { echo "=== $* ($(date +%T))" | tee -a "$LOG"; }
fail() { echo "FAILED: $*" | tee -a "$LOG"; tail -20 "$LOG.step" 2>/dev/null | tee -a "$LOG"; exit 1; }
run() { local name=$1; shift; step "$name"; "$@" > "$LOG.step" 2>&1 || fail "$name"; cat "$LOG.step" >> "$LOG"; }

if ! $PY -c "import hydra, omegaconf" 2>/dev/null; then
  run "install the bundled wheels" $PY -m pip install --no-index --find-links gpu_bundle/wheels \
    hydra-core omegaconf antlr4-python3-runtime
fi
DATA=data
[ -d gpu_bundle/fashion-mnist ] && DATA=gpu_bundle/fashion-mnist

if [ "$DRY" = "--dry-run" ]; then
  # every step once, in minutes on a CPU: ResNet-18 is not compiled (inductor takes many minutes on a CPU;
  # LeNet's compiled way runs the same code path)
  DEVICE=cpu; STEPS="--steps 2 --warmup 1 --rounds 1"
  MAIN="trainer.epochs=1 trainer.max_steps_per_epoch=3 data.batch_size=8 data.val_split=64 trainer.compile=false"
  BATCHES_LENET="256"; BATCHES_RESNET="8"; SMALL="--batch-size 8"; RESNET_WAYS="seeds,bare,cnnbench,bf16"
else
  DEVICE=cuda; STEPS="--steps 100 --warmup 20 --rounds 3"; MAIN=""
  BATCHES_LENET="256 4096"; BATCHES_RESNET="128 512"; SMALL=""; RESNET_WAYS="seeds,bare,cnnbench,compiled,bf16"
fi

run "environment" $PY - "$OUT/environment.json" <<'EOF'
import json, platform, subprocess, sys, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
        "gpus": torch.cuda.device_count()}
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
except OSError:
    info["nvidia_smi"] = None
json.dump(info, open(sys.argv[1], "w"), indent=2); print(info)
EOF

bench() { local name=$1; shift; run "bench $name" $PY scripts/bench.py --device $DEVICE --data-root "$DATA" $STEPS \
  --json "$OUT/bench_$name.json" "$@"; cp "$LOG.step" "$OUT/bench_$name.txt"; }
for b in $BATCHES_LENET; do bench "lenet_b$b" --model lenet --batch-size "$b" --ways seeds,bare,cnnbench,compiled,bf16; done
for b in $BATCHES_RESNET; do bench "resnet18_28_b$b" --model resnet18 --batch-size "$b" --ways "$RESNET_WAYS"; done
bench resnet18_imagenet_96 --model resnet18 --option stem=imagenet --resize 96 --batch-size 256 --ways seeds,cnnbench,bf16 $SMALL
bench vgg11_w4_224 --model vgg11 --option width_div=4 --resize 224 --batch-size 128 --ways seeds,cnnbench,bf16 $SMALL

job() { local name=$1; shift; run "$name" $PY -m cnnbench "$@" data.root="$DATA" data.download=false \
  trainer.device=$DEVICE hydra.run.dir="$OUT/runs/$name" $MAIN; cp "$OUT/runs/$name/summary.json" "$OUT/$name.json"; }
job main_fmnist_resnet18 experiment=fmnist_resnet18
job fast_gpu experiment=fmnist_fast_gpu

run "evaluation share and resume on $DEVICE" $PY - "$OUT" "$DATA" "$DEVICE" "$DRY" <<'EOF'
import csv, json, os, signal, subprocess, sys, time
out, data, device, dry = sys.argv[1:5]
metrics = list(csv.DictReader(open(f"{out}/runs/main_fmnist_resnet18/metrics.csv")))
summary = json.load(open(f"{out}/main_fmnist_resnet18.json"))
import torch
history = torch.load(f"{out}/runs/main_fmnist_resnet18/checkpoints/last.pt", weights_only=False)["history"]
train_s = sum(history["train_seconds"])  # the timed training passes, as the run measured them
epochs_s = sum(float(r["time/epoch_s"]) for r in metrics)
share = {"wall_s": summary["time/wall_s"], "epochs_s": epochs_s, "training_s": train_s,
         "validation_share_of_epochs": 1 - train_s / epochs_s if epochs_s else None}
run = f"{out}/runs/resume_check"
base = [sys.executable, "-m", "cnnbench", "model=resnet18", "data=fashion_mnist", f"data.root={data}",
        "data.download=false", f"trainer.device={device}", "trainer.epochs=3", "trainer.patience=0"]
if dry:
    base += ["trainer.max_steps_per_epoch=20", "trainer.progress_every=1", "data.batch_size=8", "data.val_split=64"]
first = subprocess.Popen([*base, f"hydra.run.dir={run}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
time.sleep(20 if not dry else 12)
first.send_signal(signal.SIGINT)
first_out = first.communicate()[0]
again = subprocess.run([sys.executable, "-m", "cnnbench", f"trainer.resume={run}"], capture_output=True, text=True)
result = json.load(open(f"{run}/summary.json"))
share.update(interrupt_exit=first.returncode, resume_exit=again.returncode, resumed_status=result["status"],
             warnings=[line for line in (first_out + again.stdout + again.stderr).splitlines() if "Warning" in line])
json.dump(share, open(f"{out}/evaluation_and_resume.json", "w"), indent=2)
print(json.dumps(share, indent=2))
assert again.returncode == 0 and result["status"] == "completed", again.stdout[-2000:] + again.stderr[-2000:]
EOF

step "done: figures in $OUT"

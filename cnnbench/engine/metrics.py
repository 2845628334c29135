"""The one metric vocabulary: TensorBoard tags, console columns, metrics.csv, summary.json, HParams, the report.

A key names what was measured and on which images: `train/` the training passes, `val/` the validation set,
`test/` the test set on the best checkpoint; `throughput/` and `time/` how fast. Facts of a run that are not
measurements (`epochs_run`, `best_epoch`, `params`, `status`) keep plain names.
"""

LR = "lr"
TRAIN_LOSS, TRAIN_ACC = "train/loss", "train/acc"
VAL_LOSS, VAL_ACC, VAL_ACC_BEST = "val/loss", "val/acc", "val/acc_best"
TEST_LOSS, TEST_ACC, TEST_PER_CLASS_ACC = "test/loss", "test/acc", "test/per_class_acc"
TEST_CLASS_ACC = "test/class_acc"  # TensorBoard: test/class_acc/<class>, one scalar per class
TRAIN_EXAMPLES_PER_S = "throughput/train_examples_per_s"
EPOCH_S, WALL_S, FIRST_STEP_S = "time/epoch_s", "time/wall_s", "time/first_step_s"
ELAPSED_S = "time/elapsed_s"  # seconds since the run started (start-up included; resumed runs: all sessions)
TO_TARGET_S = "time/to_target_s"  # seconds since the run started until val/acc first reached trainer.target_acc

# Per-epoch metrics, in metrics.csv column order (after `epoch`); TensorBoard tags are the same keys.
EPOCH_KEYS = (LR, TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, VAL_ACC_BEST, TRAIN_EXAMPLES_PER_S, EPOCH_S, ELAPSED_S)
# The early-stopping monitor, best.pt's criterion and what a sweeper maximises.
MONITOR = VAL_ACC

# summary.json keys of runs written before the vocabulary was shared -> today's keys.
LEGACY_SUMMARY_KEYS = {
    "best_val_acc": VAL_ACC_BEST, "test_acc": TEST_ACC, "test_loss": TEST_LOSS, "per_class_acc": TEST_PER_CLASS_ACC,
    "train_examples_per_s": TRAIN_EXAMPLES_PER_S, "wall_s": WALL_S, "first_step_s": FIRST_STEP_S,
}


def current_keys(summary: dict) -> dict:
    """A summary.json of any version with today's keys (an older file's own keys are renamed, values kept)."""
    return {LEGACY_SUMMARY_KEYS.get(key, key): value for key, value in summary.items()}

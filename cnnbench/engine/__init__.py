"""The run's machinery: objects and plain settings in, metric dicts out.

setup (the model wrapped for training), loop (one pass), fit (the epochs), checkpoint, schedulers, output
(console, TensorBoard, metrics.csv). Nothing here imports Hydra or OmegaConf; `cnnbench.train` builds what
these take from the config.
"""

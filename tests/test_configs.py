"""Every config in conf/ composes and validates; every experiment carries its seed's recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cnnbench import CONF_DIR
from cnnbench.config import validate_config

GROUPS = ("model", "data", "optimizer", "scheduler", "experiment")


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


# models that refuse the default 28x28 digits: validated at the size the d2l book trains them
MODEL_INPUTS = {"alexnet": 224, "nin": 224, "vgg11": 224, "densenet": 96}


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(make_cfg, request, group, option):
    resize = [f"data.resize={MODEL_INPUTS[option]}"] if group == "model" and option in MODEL_INPUTS else []
    # data=image_folder has no default folder (data.root is required): validate it on a generated one
    root = [f"data.root={request.getfixturevalue('image_folder_root')}"] if option == "image_folder" else []
    cfg = make_cfg([f"{group}={option}", "trainer.device=cpu", *resize, *root])
    validate_config(cfg)
    if group == "model":
        assert cfg.model.name == option


# experiment -> values the seed's recipe fixes (dotted key -> value)
SEED_RECIPES = {
    "d2l_lenet": {"model.name": "lenet", "data.name": "fashion_mnist", "data.batch_size": 256, "optimizer.lr": 0.9,
                  "trainer.epochs": 10, "data.resize": None, "model.init": "xavier", "data.val_split": 0},
    "d2l_alexnet": {"model.name": "alexnet", "data.resize": 224, "data.batch_size": 128, "optimizer.lr": 0.01,
                    "trainer.epochs": 10},
    "d2l_vgg": {"model.name": "vgg11", "model.width_div": 4, "data.resize": 224, "data.batch_size": 128,
                "optimizer.lr": 0.05, "trainer.epochs": 10},
    "d2l_nin": {"model.name": "nin", "data.resize": 224, "data.batch_size": 128, "optimizer.lr": 0.1},
    "d2l_googlenet": {"model.name": "googlenet", "data.resize": 96, "data.batch_size": 128, "optimizer.lr": 0.1},
    "d2l_bn_lenet": {"model.name": "lenet_bn", "data.batch_size": 256, "optimizer.lr": 1.0, "trainer.epochs": 10},
    "d2l_resnet18": {"model.name": "resnet18", "model.stem": "imagenet", "data.resize": 96, "data.batch_size": 256,
                     "optimizer.lr": 0.05},
    "d2l_densenet": {"model.name": "densenet", "data.resize": 96, "data.batch_size": 256, "optimizer.lr": 0.1},
    "fmnist_resnet18": {"model.name": "resnet18", "model.stem": "small", "data.name": "fashion_mnist",
                        "data.augment": True, "data.mean": [0.2860], "data.std": [0.3530], "data.val_split": 6000,
                        "data.split_seed": 42, "data.batch_size": 128, "optimizer.lr": 0.1,
                        "optimizer.momentum": 0.9, "optimizer.nesterov": True, "optimizer.weight_decay": 1e-4,
                        "trainer.label_smoothing": 0.1, "scheduler._target_": "cnnbench.engine.schedulers.cosine",
                        "scheduler.min_lr": 1e-4, "trainer.epochs": 50, "trainer.grad_clip": 1.0,
                        "trainer.patience": 10},
    "fmnist_seed001": {"model.name": "lenet5", "data.name": "fashion_mnist", "data.augment": True,
                       "data.val_split": 6000, "data.batch_size": 128, "optimizer.lr": 0.1, "optimizer.nesterov": True,
                       "trainer.epochs": 50, "trainer.patience": 10, "trainer.label_smoothing": 0.1,
                       "reported.by_model": {"lenet5": 0.910, "alexnet_small": 0.930, "resnet18": 0.953}},
    "mnist_lenet": {"data.name": "mnist", "data.batch_size": 64, "trainer.epochs": 10, "data.val_split": 0},
    "mnist_mlp_vs_cnn": {"model.name": "cnn_small", "data.name": "mnist", "data.batch_size": 64,
                         "optimizer.lr": 0.01, "optimizer.momentum": 0.5},
    "cifar10_vgg": {"model.name": "vgg11", "data.name": "cifar10", "data.batch_size": 128, "trainer.epochs": 10},
    "cifar10_resnet18": {"model.name": "resnet18", "data.name": "cifar10", "data.batch_size": 128,
                         "trainer.epochs": 10},
}
D2L_COMMON = {"data.name": "fashion_mnist", "data.val_split": 0, "data.normalize": False, "data.augment": False,
              "model.init": "xavier", "optimizer.momentum": 0.0, "optimizer.weight_decay": 0.0,
              "scheduler._target_": "cnnbench.engine.schedulers.constant", "trainer.epochs": 10, "trainer.patience": 0}


# cnnbench's own presets: the seeds' targets, reached by other methods; they name the seed figure they aim at
FAST_PRESETS = {"fmnist_fast_cpu": 0.93, "fmnist_fast_gpu": 0.955}


def test_every_experiment_has_a_recipe_here():
    assert sorted([*SEED_RECIPES, *FAST_PRESETS]) == options("experiment")


@pytest.mark.parametrize("experiment", sorted(FAST_PRESETS))
def test_fast_presets_record_their_target_on_the_real_data(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}"])
    assert cfg.data.name == "fashion_mnist" and cfg.data.val_split == 6000 and cfg.data.split_seed == 42
    assert cfg.trainer.target_acc == FAST_PRESETS[experiment] and not cfg.trainer.stop_at_target
    assert cfg.reported.metric == "test/acc" and cfg.reported.value and "seed 001" in cfg.reported.source
    validate_config(cfg)


@pytest.mark.parametrize("experiment", sorted(SEED_RECIPES))
def test_experiment_carries_the_seed_recipe(make_cfg, experiment):
    cfg = make_cfg([f"experiment={experiment}"])
    expected = {**(D2L_COMMON if experiment.startswith("d2l_") else {}), **SEED_RECIPES[experiment]}
    for key, value in expected.items():
        actual = OmegaConf.select(cfg, key)
        actual = OmegaConf.to_container(actual) if OmegaConf.is_config(actual) else actual
        assert actual == value, (experiment, key, actual, value)
    validate_config(cfg)


@pytest.mark.parametrize("experiment", sorted(SEED_RECIPES))
def test_every_experiment_says_what_its_seed_reported(make_cfg, experiment):
    reported = make_cfg([f"experiment={experiment}"]).reported
    assert reported.metric == "test/acc" and reported.source  # a number, or null where the seed shows none
    assert reported.value is None or 0.8 < reported.value < 1


@pytest.mark.parametrize("model", ["lenet5", "alexnet_small", "resnet18"])
def test_the_seed001_recipe_takes_any_model_with_its_reported_figure(make_cfg, model):
    from cnnbench.train import reported_for

    cfg = make_cfg(["experiment=fmnist_seed001", f"model={model}", "trainer.device=cpu"])
    validate_config(cfg)  # no model-specific key in the recipe: any model composes with it
    expected = {"lenet5": 0.910, "alexnet_small": 0.930, "resnet18": 0.953}[model]
    assert reported_for(OmegaConf.to_container(cfg, resolve=False))["value"] == expected


def test_cfg_job_shows_an_experiment(cli_main):
    result = cli_main("experiment=fmnist_resnet18", "--cfg", "job")
    assert result.returncode == 0, result.stderr
    assert "nesterov: true" in result.stdout and "label_smoothing: 0.1" in result.stdout


def test_mlp_vs_cnn_preset_sweeps_both_models_over_both_pixel_orders(cli_main, mnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    result = cli_main("-m", "experiment=mnist_mlp_vs_cnn", f"data.root={mnist_root}", "data.download=false",
                     "trainer.device=cpu", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(runs) == 4
    combos = {(r["model"], next(o.lower() for o in r["overrides"] if o.startswith("data.permute_pixels")))
              for r in runs}
    assert combos == {(m, f"data.permute_pixels={p}") for m in ("mlp", "cnn_small") for p in ("false", "true")}
    params = {r["model"]: r["params"] for r in runs}
    assert params == {"mlp": 6442, "cnn_small": 6422}


def test_every_composed_config_keeps_the_values_it_had_before_the_shared_bases():
    """Every experiment, dataset, optimizer and schedule composed as tests/golden/composed_configs.json recorded it
    before conf/base/ took the shared keys; only the keys of MOVED_KEYS changed place."""
    import json

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from cnnbench import CONF_DIR
    from cnnbench.config import upgraded

    golden = json.loads((Path(__file__).parent / "golden" / "composed_configs.json").read_text())
    assert len(golden) == 30
    with initialize_config_dir(CONF_DIR, version_base=None):
        for name, expected in golden.items():
            cfg = compose("config", overrides=[] if name == "(defaults)" else name.split())
            assert OmegaConf.to_container(cfg, resolve=False) == upgraded(expected), name

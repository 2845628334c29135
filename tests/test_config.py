"""Config validation (cnnbench.config): every bad value or unknown key stops the run before any work, with one
line naming it."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from cnnbench.config import build_model, prepare_config, validate_config
from cnnbench.errors import ConfigError
from tests.conftest import TINY_RUN, one_line_error

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def tiny_run_with(*overrides: str) -> list[str]:
    """TINY_RUN with `overrides` replacing its entries for the same keys; another `data=` drops its data.* too."""
    keys = {o.lstrip("+").split("=", 1)[0] for o in overrides}

    def replaced(entry: str) -> bool:
        key = entry.split("=", 1)[0]
        return key in keys or ("data" in keys and key.startswith("data."))

    return [o for o in TINY_RUN if not replaced(o)] + list(overrides)


# overrides -> fragments the one-line message must contain (the key with its value, and what is allowed),
# through the front door: composed by Hydra, validated, printed (test_cli.py has the CLI's own checks).
CLI_CASES = [
    (["optimizer.nesterov=true", "optimizer.momentum=0"], ["optimizer.nesterov=true", "momentum > 0"]),
    (["optimizer=adam", "optimizer.betas=[0.9,1.2]"], ["optimizer.betas=[0.9,1.2]", "two numbers in [0, 1)"]),
    (["data.mean=[0.5,0.5]"], ["data.mean=[0.5,0.5]", "1 number(s) in [0, 1]", "data.in_chans=1"]),
    (["model=alexnet", "data=digits"], ["alexnet", "65x65", "data.resize=224"]),
    (["+trainer.epoch=3"], ["trainer.epoch is not a config key", "did you mean trainer.epochs?"]),
    (["model=vgg11", "+model.widht_div=2"], ["model.widht_div is not a config key", "did you mean model.width_div?"]),
]


@pytest.mark.parametrize(("overrides", "fragments"), CLI_CASES, ids=[" ".join(o) for o, _ in CLI_CASES])
def test_bad_config_on_the_command_line_is_one_line_and_exit_code_2(cli_main, tmp_path, overrides, fragments):
    run_dir = tmp_path / "run"
    result = cli_main(*tiny_run_with(*overrides), f"hydra.run.dir={run_dir}")
    one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not (run_dir / "checkpoints").exists()


# In-process, one or more per rule family: overrides -> fragments of the message.
RULE_CASES = [
    # top level and trainer
    (["seed=abc"], ["seed=abc is not allowed: expected an integer"]),
    (["trainer.epochs=0"], ["trainer.epochs=0 is not allowed: expected an integer >= 1"]),
    (["trainer.patience=-1"], ["trainer.patience=-1", "an integer >= 0, or null"]),
    (["trainer.max_steps_per_epoch=0"], ["trainer.max_steps_per_epoch=0", "an integer >= 1"]),
    (["trainer.label_smoothing=-0.1"], ["trainer.label_smoothing=-0.1", "[0, 1)"]),
    (["trainer.grad_clip=-1"], ["trainer.grad_clip=-1", "> 0"]),
    (["trainer.progress_every=0"], ["trainer.progress_every=0", ">= 1"]),
    (["trainer.device=tpu"], ["trainer.device=tpu", "auto, cpu, cuda, cuda:N or mps"]),
    (["trainer.deterministic=maybe"], ["trainer.deterministic=maybe", "true or false"]),
    (["trainer.compile=fast"], ["trainer.compile=fast", "true, false or a torch.compile mode", "reduce-overhead"]),
    (["trainer.devices=1.5"], ["trainer.devices=1.5", "an integer >= 1"]),
    (["trainer.sync_bn=maybe"], ["trainer.sync_bn=maybe", "true or false"]),
    (["trainer.target_acc=1.5"], ["trainer.target_acc=1.5", "a number in (0, 1], or null"]),
    (["trainer.stop_at_target=true"], ["trainer.stop_at_target=true is not allowed", "trainer.target_acc set"]),
    (["trainer.ema_decay=1"], ["trainer.ema_decay=1", "a number in (0, 1), or null"]),
    (["trainer.tta=rotate"], ["trainer.tta=rotate", "one of none, flip"]),
    (["data.random_erasing=2"], ["data.random_erasing=2", "a probability in [0, 1]"]),
    (["data.mixup_alpha=-1"], ["data.mixup_alpha=-1", "a number >= 0"]),
    (["data.cutmix_alpha=x"], ["data.cutmix_alpha=x", "a number >= 0"]),
    (["trainer.decay_norm_and_bias=sometimes"], ["trainer.decay_norm_and_bias=sometimes", "true or false"]),
    (["trainer.devices=2", "trainer.sync_bn=true", "trainer.device=cpu"],
     ["trainer.sync_bn=true is not allowed on the CPU", "CUDA only"]),
    (["+trainer.epoch=3"], ["trainer.epoch is not a config key (did you mean trainer.epochs?)"]),
    (["+seeed=1"], ["seeed is not a config key (did you mean seed?)"]),
    # model
    (["model.name=lenet55"], ["model.name=lenet55 is not allowed: expected one of", "lenet5"]),
    (["model.init=he"], ["model.init=he is not allowed: expected one of default, xavier, kaiming"]),
    (["model=alexnet", "data=digits"], ["alexnet needs inputs of at least 65x65 (got 28x28)", "data.resize"]),
    (["model=nin", "data=fashion_mnist", "data.resize=32"], ["nin needs inputs", "data.resize"]),
    (["model=mlp", "model.n_hidden=0"], ["model.n_hidden=0", "an integer >= 1"]),
    (["model=resnet18", "model.stem=big"], ["model.stem=big", "small, imagenet"]),
    (["model=vgg11", "data.resize=224", "model.width_div=3"], ["model.width_div=3", "divides 64"]),
    (["model=vgg11", "+model.widht_div=2"], ["model.widht_div is not a config key (did you mean model.width_div?)"]),
    (["+model.num_classes=5"], ["model.num_classes is not a config key"]),
    (["model=resnet18", "+model.depth=3"], ["model.depth is not a config key", "stem"]),
    # data
    (["data.name=imagenet"], ["data.name=imagenet", "mnist, fashion_mnist, cifar10, digits, synthetic"]),
    (["data.batch_size=0"], ["data.batch_size=0", "an integer >= 1"]),
    (["data.eval_batch_size=-5"], ["data.eval_batch_size=-5", "an integer >= 1"]),
    (["data.val_split=-1"], ["data.val_split=-1", "a count >= 0 or a fraction in (0, 1)"]),
    (["data.val_split=1.5"], ["data.val_split=1.5", "a count >= 0 or a fraction in (0, 1)"]),
    (["data.split_seed=-1"], ["data.split_seed=-1", "an integer in [0, 4294967295]"]),
    (["seed=99999999999999999999"], ["seed=99999999999999999999", "an integer in [0, 4294967295]"]),
    (["data.resize=100000"], ["data.resize=100000", "an integer in [1, 4096], or null"]),
    (["data=synthetic", "data.image_size=5000"], ["data.image_size=5000", "an integer in [1, 4096]"]),
    (["~model"], ["model is missing from the config (removed with ~model?)", "choose one with model=<name>"]),
    (["data.resize=0"], ["data.resize=0", "an integer in [1, 4096]"]),
    (["data.augment=yes"], ["data.augment=yes", "true or false"]),
    (["data.crop_padding=-1"], ["data.crop_padding=-1", "an integer in [0, 16] (0: flip only)"]),
    (["data.permute_pixels=1"], ["data.permute_pixels=1", "true or false"]),
    (["data.mean=[0.1,0.2]"], ["data.mean=[0.1,0.2]", "1 number(s) in [0, 1], one per channel"]),
    (["data.std=[0]"], ["data.std=[0]", "1 number(s) > 0"]),
    (["data=cifar10", "data.std=[0.2,0.2]"], ["data.std=[0.2,0.2]", "3 number(s) > 0"]),
    (["data=mnist", "data.image_size=32"], ["data.image_size=32", "28 for data=mnist", "data.resize"]),
    (["data=cifar10", "data.in_chans=1"], ["data.in_chans=1", "3 for data=cifar10"]),
    (["data=mnist", "data.download=maybe"], ["data.download=maybe", "true or false"]),
    (["data=synthetic", "data.num_train=0"], ["data.num_train=0", "an integer >= 1"]),
    (["data=synthetic", "data.noise=-1"], ["data.noise=-1", "a number >= 0"]),
    (["+data.root=elsewhere"], ["data.root is not a config key"]),  # digits has no files
    (["+data.batchsize=8"], ["data.batchsize is not a config key (did you mean data.batch_size?)"]),
    # optimizer
    (["optimizer.lr=0"], ["optimizer.lr=0 is not allowed: expected a number > 0"]),
    (["optimizer.lr=nan"], ["optimizer.lr=nan", "a number > 0"]),
    (["optimizer.momentum=1.5"], ["optimizer.momentum=1.5", "[0, 1)"]),
    (["optimizer.weight_decay=-1e-4"], ["optimizer.weight_decay=-0.0001", ">= 0"]),
    (["optimizer.nesterov=true", "optimizer.momentum=0"], ["optimizer.nesterov=true is not allowed", "momentum > 0"]),
    (["optimizer=adam", "optimizer.betas=[0.9,1.2]"], ["optimizer.betas=[0.9,1.2]", "two numbers in [0, 1)"]),
    (["optimizer=adamw", "optimizer.betas=[0.9]"], ["optimizer.betas=[0.9]", "two numbers in [0, 1)"]),
    (["+optimizer.betas=[0.9,0.99]"], ["optimizer.betas is not a config key"]),  # SGD has no betas
    (["optimizer=adam", "+optimizer.momentum=0.9"], ["optimizer.momentum is not a config key"]),
    # scheduler
    (["scheduler=step", "scheduler.gamma=0"], ["scheduler.gamma=0", "a number in (0, 1]"]),
    (["scheduler=step", "scheduler.step_epochs=0"], ["scheduler.step_epochs=0", "an integer >= 1"]),
    (["scheduler.warmup_epochs=-1"], ["scheduler.warmup_epochs=-1", "a number >= 0"]),
    (["scheduler.min_lr=-1"], ["scheduler.min_lr=-1", "a number >= 0"]),
    (["scheduler=onecycle", "scheduler.pct_start=1"], ["scheduler.pct_start=1", "a number in (0, 1)"]),
    (["scheduler=onecycle", "scheduler.div_factor=0"], ["scheduler.div_factor=0", "a number > 0"]),
    (["scheduler=onecycle", "scheduler.final_div_factor=-1"], ["scheduler.final_div_factor=-1", "a number > 0"]),
    (["scheduler=none", "+scheduler.min_lr=0"], ["scheduler.min_lr is not a config key"]),
]


def checked(cfg):
    """What a run checks before it trains: validation, then the preparation (files read, the model built)."""
    validate_config(cfg)
    return prepare_config(cfg)


@pytest.mark.parametrize(("overrides", "fragments"), RULE_CASES, ids=[" ".join(o) for o, _ in RULE_CASES])
def test_validate_config_names_the_key_and_what_is_allowed(make_cfg, overrides, fragments):
    with pytest.raises(ConfigError) as err:
        checked(make_cfg(overrides))
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@NO_CUDA
def test_cuda_without_cuda_is_refused(make_cfg):
    with pytest.raises(ConfigError, match=r"^trainer\.device=cuda is not allowed: expected one of auto, cpu .*CUDA"):
        validate_config(make_cfg(["trainer.device=cuda"]))


@pytest.mark.parametrize("overrides", [
    [],
    ["optimizer.nesterov=true", "optimizer.momentum=0.9"],
    ["optimizer=adamw", "optimizer.betas=[0.0,0.5]"],
    ["data.val_split=0"], ["data.val_split=100"], ["data.val_split=0.25"],
    ["trainer.patience=null", "trainer.grad_clip=null", "trainer.max_steps_per_epoch=null"],
    ["model=alexnet", "data=fashion_mnist", "data.resize=65"],
    ["model=vgg11", "model.width_div=4", "data.resize=224", "model.init=xavier"],
    ["data=synthetic", "data.in_chans=3", "data.mean=[0.5,0.5,0.5]", "data.std=[0.2,0.2,0.2]", "data.image_size=16"],
])
def test_good_configs_pass(make_cfg, overrides):
    checked(make_cfg([*overrides, "trainer.device=cpu"]))


def test_the_preparation_builds_the_model_on_the_meta_device(make_cfg, monkeypatch):
    # VGG-11 at 224 has 129M parameters: the preparation checks it fits the input without allocating them
    import cnnbench.config.prepare

    built = []

    def spy(cfg, **kwargs):
        model = build_model(cfg, **kwargs)
        built.append(next(model.parameters()).device)
        return model

    monkeypatch.setattr(cnnbench.config.prepare, "build_model", spy)
    cfg = make_cfg(["experiment=d2l_vgg", "model.width_div=1", "trainer.device=cpu"])
    validate_config(cfg)
    assert built == []  # validation only checks
    prepare_config(cfg)
    assert built == [torch.device("meta")]


def test_validation_only_checks_and_the_preparation_reads_the_folder(make_cfg, tmp_path):
    from cnnbench.errors import DataError

    cfg = make_cfg(["data=image_folder", f"data.root={tmp_path / 'nowhere'}", "trainer.device=cpu"])
    before = OmegaConf.to_yaml(cfg)
    validate_config(cfg)  # no file read, no model built: nothing to refuse yet
    assert OmegaConf.to_yaml(cfg) == before
    with pytest.raises(DataError, match="nowhere is not a folder"):
        prepare_config(cfg)
    assert OmegaConf.to_yaml(cfg) == before

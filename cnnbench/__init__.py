"""cnnbench: a config-driven experiment runner for the classic convolutional networks."""

from pathlib import Path

__version__ = "0.1.0"


def _conf_dir() -> str:
    """The Hydra configs: copied into the package by a regular install, beside it in a source checkout
    (an editable install reads them there)."""
    here = Path(__file__).resolve().parent
    installed = here / "conf"
    return str(installed if (installed / "config.yaml").is_file() else here.parent / "conf")


CONF_DIR = _conf_dir()

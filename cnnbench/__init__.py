"""cnnbench: a config-driven experiment runner for the classic convolutional networks."""

__version__ = "0.1.0"

from pathlib import Path

# conf/ sits beside the package in the source tree; the project is installed editable (`pip install -e`).
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

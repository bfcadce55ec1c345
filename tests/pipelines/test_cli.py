import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from regenmap import __version__
from regenmap.pipelines.cli import app

runner = CliRunner()
COMMANDS = ["demo", "simulate", "extract", "features", "train", "evaluate", "predict", "run", "map",
            "model-info"]


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"regenmap {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(rf"Example: .*regenmap {command}", result.output), result.output


def test_missing_config_gives_clear_error_and_config_exit_code(tmp_path) -> None:
    result = runner.invoke(app, ["features", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 2
    assert "absent.yaml: configuration file not found" in result.output


def test_console_script_is_installed() -> None:
    done = subprocess.run([sys.executable, "-m", "regenmap.pipelines.cli", "--version"],
                          capture_output=True, text=True, check=True)
    assert __version__ in done.stdout

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


def test_an_unexpected_failure_is_a_message_and_a_traceback_file_not_a_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from regenmap.pipelines.cli import _guard

    def broken() -> None:
        {}["missing"]  # a bug

    with pytest.raises(typer.Exit) as caught:
        _guard(broken)
    assert caught.value.exit_code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "error: unexpected failure (KeyError: 'missing')" in said
    assert "Traceback" not in said
    path = re.search(r"the traceback is in (\S+?);", said)
    assert path is not None, said
    from pathlib import Path

    saved = Path(path.group(1)).read_text()
    assert saved.startswith("Traceback (most recent call last)") and "KeyError" in saved


def test_quiet_errors_are_one_final_json_event(tmp_path) -> None:
    import json

    done = subprocess.run([sys.executable, "-m", "regenmap.pipelines.cli", "features",
                           str(tmp_path / "absent.yaml"), "--quiet"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    [event] = [json.loads(line) for line in done.stderr.splitlines()]
    assert (event["event"], event["stage"], event["status"], event["exit_code"]) == (
        "finished", "features", "failed", 2)
    assert "absent.yaml: configuration file not found" in event["message"]

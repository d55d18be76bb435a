"""The ``mrirecon`` command: every subcommand's --help through the dispatcher, the exit-code convention,
and ``python -m mrirecon`` as the same entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mrirecon.cli import COMMANDS, main

# words each command's own --help prints (its parser, not the dispatcher's list)
OWN_HELP = {
    "fit": "--config",
    "evaluate": "--method",
    "reconstruct": "--checkpoint",
    "convert": "h5-to-dicom",
    "app": "--port",
    "bench": "backbone",
    "pretrain": "--config",
    "synth": "--preset",
}


def test_the_list_of_commands_is_the_documented_one():
    assert set(COMMANDS) == set(OWN_HELP)


@pytest.mark.parametrize("name", sorted(OWN_HELP))
def test_each_subcommand_help_comes_from_its_module(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert OWN_HELP[name] in capsys.readouterr().out


def test_help_lists_commands_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert "0 all done; 1 some inputs failed" in out and "2 usage error" in out


def test_unknown_or_missing_command_is_a_usage_error(capsys):
    assert main(["recontruct", "x"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'recontruct'" in err and "reconstruct" in err
    assert main([]) == 2
    assert "usage: mrirecon COMMAND" in capsys.readouterr().err


def test_the_command_exit_code_passes_through(tmp_path, capsys):
    # a usage error of the command itself (an input that does not exist) stays 2
    assert main(["reconstruct", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err


def test_python_dash_m_mrirecon_is_the_same_command():
    run = subprocess.run([sys.executable, "-m", "mrirecon", "nope"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown command 'nope'" in run.stderr

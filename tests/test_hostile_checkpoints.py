"""Checkpoints never run code: no URLs, no weights_only=False, no class outside mrirecon imported."""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from mrirecon.codecs.checkpoint import UnsafeCheckpointError, load_codec
from mrirecon.training.cli import check_checkpoint
from mrirecon.training.cli import main as fit_main

CODECS = Path(__file__).parents[1] / "codecs"


@pytest.fixture
def trap(tmp_path, monkeypatch):
    """A module ``mrirecon_trap`` that, if ever imported or unpickled, leaves a marker file."""
    marker = tmp_path / "code-ran"
    (tmp_path / "mrirecon_trap.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\nclass Net: pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mrirecon_trap", None)
    return marker


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("url", ["http://host/x.ckpt", "https://host/x.ckpt", "file:///tmp/x.ckpt", "s3://b/x"])
def test_checkpoint_urls_are_refused(url):
    with pytest.raises(UnsafeCheckpointError, match="URLs are refused"):
        check_checkpoint(url, None)


def test_weights_only_false_is_refused(tmp_path):
    with pytest.raises(UnsafeCheckpointError, match="weights_only false is refused"):
        check_checkpoint(tmp_path / "x.ckpt", False)


def test_pickled_code_is_not_run(tmp_path, trap):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload(trap)}, path)
    with pytest.raises(UnsafeCheckpointError, match="not a plain-tensor"):
        check_checkpoint(path, None)
    assert not trap.exists()


def test_foreign_class_path_refused_before_import(tmp_path, trap):
    path = tmp_path / "foreign.ckpt"
    hparams = {"net": {"class_path": "mrirecon_trap.Net", "init_args": {}}}
    torch.save({"state_dict": {}, "hyper_parameters": hparams}, path)
    with pytest.raises(UnsafeCheckpointError, match="'mrirecon_trap.Net' is not part of mrirecon"):
        check_checkpoint(path, None)
    assert not trap.exists() and "mrirecon_trap" not in sys.modules


def test_fit_cli_refuses_url_and_foreign_class(tmp_path, trap):
    recipe = ["--config", str(CODECS / "base.yaml"), "--config", str(CODECS / "tiny.yaml")]
    base = ["fit", *recipe, f"--data.data_path={tmp_path}", f"--trainer.default_root_dir={tmp_path}"]
    with pytest.raises(SystemExit, match="URLs are refused"):
        fit_main([*base, "--ckpt_path=http://127.0.0.1:9/x.ckpt"])
    with pytest.raises(SystemExit, match="weights_only false"):
        fit_main([*base, f"--ckpt_path={tmp_path / 'x.ckpt'}", "--weights_only=false"])
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": {"class_path": "mrirecon_trap.Net"}}}, path)
    with pytest.raises(SystemExit, match="not part of mrirecon"):
        fit_main([*base, f"--ckpt_path={path}"])
    assert not trap.exists() and "mrirecon_trap" not in sys.modules


def test_card_class_path_refused_before_import(tmp_path, trap):
    card = {"format": "mrirecon-codec/1", "net": {"class_path": "mrirecon_trap.Net"}, "files": {}}
    (tmp_path / "card.json").write_text(json.dumps(card))
    (tmp_path / "codec.safetensors").write_bytes(b"")
    with pytest.raises(UnsafeCheckpointError, match="not part of mrirecon"):
        load_codec(tmp_path)
    assert not trap.exists() and "mrirecon_trap" not in sys.modules

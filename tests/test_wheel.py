"""The package as a wheel: built with ``pip wheel``, installed in a fresh virtual environment outside the
repository, it finds its backbone configs, default codec and example scans and reconstructs an example.

The fresh environment gets the wheel only (``--no-deps``); its dependencies come from the test's own
environment through a ``.pth`` line, so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]
CARRIED = (
    "mrirecon/assets/backbone/tiny/config.json",
    "mrirecon/assets/backbone/nirvana-1.3B/config.json",
    "mrirecon/assets/default_codec/card.json",
    "mrirecon/assets/default_codec/codec.safetensors",
    "mrirecon/assets/examples/example_test_format_acc4.h5",
)


def _build_wheel(tmp: Path) -> Path:
    """``pip wheel`` of a clean copy of the sources (links to the artefacts resolved into files)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "mrirecon", src / "mrirecon", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")]
    _run([*cmd, str(src)])
    (wheel,) = (tmp / "dist").glob("mrirecon-*.whl")
    return wheel


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run without PYTHONPATH (the source tree must stay invisible); stderr in the failure message."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, **kwargs)
    assert run.returncode == 0, f"{cmd[:4]} failed:\n{run.stderr[-3000:]}"
    return run


def test_wheel_installs_and_reconstructs_an_example(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert set(CARRIED) <= names
    assert not any(n.endswith(".py") and "/assets/" in n and not n.endswith("assets/__init__.py") for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)]
    _run(pip)
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(purelib) / "test-env-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"  # outside the repository: nothing can come from the source tree
    work.mkdir()
    probe = (
        "import mrirecon, mrirecon.app as app, mrirecon.codecs.checkpoint as ck, mrirecon.codecs.backbones as bb;"
        "print(mrirecon.__file__); print(ck.DEFAULT_CHECKPOINT); print(app.DEFAULT_EXAMPLES_DIR);"
        "print(bb.resolve_backbone_config('tiny').hidden_size)"
    )
    out = _run([str(python), "-c", probe], cwd=work)
    module, checkpoint, examples, _ = out.stdout.split("\n")[:4]
    for path in (module, checkpoint, examples):
        assert Path(path).resolve().is_relative_to(venv.resolve()), path

    example = Path(examples) / "example_test_format_acc4.h5"
    cmd = [str(python), "-m", "mrirecon.reconstruct", "--input", str(example), "--output", "out", "--device", "cpu"]
    _run(cmd, cwd=work)
    with h5py.File(work / "out" / example.name, "r") as hf:
        recon = hf["reconstruction"][()]
        assert hf.attrs["model"].startswith("mrirecon.")
    assert recon.ndim == 3 and np.isfinite(recon).all() and recon.max() > 0

    # the console script of [project.scripts], the same reconstruction through `mrirecon reconstruct`
    command = [str(venv / "bin" / "mrirecon"), "reconstruct", "--input", str(example), "--output", "out2"]
    _run([*command, "--device", "cpu"], cwd=work)
    with h5py.File(work / "out2" / example.name, "r") as hf:
        np.testing.assert_allclose(hf["reconstruction"][()], recon, rtol=1e-5, atol=1e-7)

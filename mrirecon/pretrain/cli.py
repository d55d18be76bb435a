"""Pretraining CLI: ``python -m mrirecon.pretrain fit --config backbone/pretrain.yaml``.

LightningCLI over :class:`LMPretrainModule` and :class:`CorpusDataModule`. After ``fit`` the held-out set is
scored once more and ``<default_root_dir>/model/`` gets the weights (``save_pretrained``: Nirvana's official
key names, or Hugging Face's for the transformer), ``tokenizer.json`` and ``pretraining.json`` (tokens seen,
loss curves, held-out perplexity and bits per byte, unigram / bigram baselines on the same held-out tokens).
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from ..io.files import default_file_mode, write_atomically, write_bytes_atomically
from .data import CorpusDataModule, ngram_baselines
from .module import LMPretrainModule, non_embedding_params

FACTS_NAME = "pretraining.json"


class LineProgress(L.Callback):
    """One plain line every ``every_n_steps`` steps (step, tokens, loss, learning rate, tokens/s) and one per
    held-out evaluation: readable in log files, where a progress bar is not."""

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every = every_n_steps
        self._t0 = time.time()
        self._last = (0, 0.0)

    def on_train_start(self, trainer: L.Trainer, pl_module: LMPretrainModule) -> None:
        self._t0 = time.time()
        self._last = (pl_module.tokens_seen, self._t0)

    def on_train_batch_end(self, trainer, pl_module: LMPretrainModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step % self.every or not trainer.is_global_zero:
            return
        now, (tok0, t0) = time.time(), self._last
        rate = (pl_module.tokens_seen - tok0) / max(now - t0, 1e-9)
        self._last = (pl_module.tokens_seen, now)
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        print(
            f"step {step} tokens {pl_module.tokens_seen / 1e6:.2f}M loss {loss:.4f} "
            f"lr {pl_module.optimizers().param_groups[0]['lr']:.2e} {rate / 1e3:.1f}k tok/s "
            f"elapsed {now - self._t0:.0f}s",
            flush=True,
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: LMPretrainModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not pl_module.heldout_curve:
            return
        loss = pl_module.heldout_curve[-1]["loss"]
        print(f"held-out step {trainer.global_step} loss {loss:.4f} ppl {math.exp(loss):.2f}", flush=True)


class PretrainCLI(LightningCLI):
    """LightningCLI that checks the tokenizer against the model and exports the language model after ``fit``."""

    def before_fit(self) -> None:
        self.datamodule.setup("fit")
        vocab, cfg = self.datamodule.vocab_size, self.model.model_config
        if vocab != cfg.vocab_size:
            raise SystemExit(
                f"pretrain: tokenizer {self.datamodule.hparams.tokenizer} has {vocab} tokens, the model config "
                f"{self.model.hparams.config!r} has vocab_size {cfg.vocab_size}; they must be equal"
            )
        for cb in self.trainer.checkpoint_callbacks:  # before the trainer resolves ckpt_path="last" there
            if isinstance(cb, ModelCheckpoint) and cb.dirpath is None:
                cb.dirpath = str(Path(self.trainer.default_root_dir) / "checkpoints")
        self._t0 = time.time()

    def after_fit(self) -> None:
        trainer, model, data = self.trainer, self.model, self.datamodule
        seconds = round(time.time() - self._t0, 1)
        if not model.heldout_curve or model.heldout_curve[-1]["step"] != trainer.global_step:
            trainer.validate(model, datamodule=data, verbose=False)  # score the final weights
        if not trainer.is_global_zero:
            return
        out = Path(trainer.default_root_dir) / "model"
        save_lm(model, data, out, seconds=seconds, precision=str(trainer.precision), steps=trainer.global_step)
        facts = json.loads((out / FACTS_NAME).read_text())
        print(
            f"saved {out}: {facts['tokens_seen'] / 1e6:.1f}M tokens, held-out ppl {facts['heldout']['ppl']:.2f} "
            f"(bigram {facts['baselines']['bigram_ppl']:.2f}, unigram {facts['baselines']['unigram_ppl']:.2f})",
            flush=True,
        )


def save_lm(model: LMPretrainModule, data: CorpusDataModule, out: Path, **run) -> None:
    """Weights + config (``save_pretrained``), ``tokenizer.json`` and ``pretraining.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    lm = model.lm
    if model.hparams.save_dtype != "float32":  # a copy: the module keeps training precision
        lm = copy.deepcopy(lm).to(getattr(torch, model.hparams.save_dtype))
    if model.hparams.architecture == "transformer":
        lm.save_pretrained(out, safe_serialization=True)
    else:
        lm.save_pretrained(out)
    for written in out.iterdir():  # Hugging Face's writer leaves owner-only modes on some files
        if written.is_file():
            written.chmod(default_file_mode())
    write_atomically(out / "tokenizer.json", lambda tmp: shutil.copyfile(data.hparams.tokenizer, tmp))
    loss = model.heldout_curve[-1]["loss"] if model.heldout_curve else float("nan")
    facts = {
        "architecture": model.hparams.architecture,
        "trigger": model.hparams.trigger if model.hparams.architecture == "nirvana" else None,
        "config": model.model_config.to_dict(),
        "parameters": sum(p.numel() for p in lm.parameters()),
        "non_embedding_parameters": non_embedding_params(lm),
        "tokens_seen": model.tokens_seen,
        "seq_len": data.hparams.seq_len,
        "batch_size": data.hparams.batch_size,
        "data_seed": data.hparams.seed,
        "heldout": {
            "loss": loss,
            "ppl": math.exp(loss),
            "bits_per_byte": loss / math.log(2) / data.heldout_bytes_per_token,
        },
        "baselines": ngram_baselines(data.train_ids, data.heldout_windows(), model.model_config.vocab_size),
        "data": data.facts(),
        "curve": model.curve,
        "heldout_curve": model.heldout_curve,
        "hparams": {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.hparams.items()},
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        **run,
    }
    write_bytes_atomically(out / FACTS_NAME, (json.dumps(facts, indent=1) + "\n").encode())


def main(args: list[str] | None = None) -> PretrainCLI:
    torch.set_float32_matmul_precision("high")
    return PretrainCLI(
        LMPretrainModule,
        CorpusDataModule,
        args=args,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "enable_progress_bar": sys.stderr.isatty(),
            "gradient_clip_val": 1.0,
            "num_sanity_val_steps": 0,
        },
    )

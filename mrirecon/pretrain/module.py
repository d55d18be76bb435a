"""The causal-LM pretraining module: Nirvana (Trigger ``token`` / ``off`` / ``scan``), its gated-DeltaNet
ablation, or a Llama-style transformer, all trained with every parameter trainable."""

from __future__ import annotations

import dataclasses
import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Timer
from torch import Tensor, nn

from ..codecs.backbones import llama_config, resolve_backbone_config
from ..nirvana import NirvanaConfig, NirvanaForCausalLM, fla_available

ARCHITECTURES = ("nirvana", "gated-deltanet", "transformer")


def non_embedding_params(model: nn.Module) -> int:
    """Parameters outside the token embeddings and the LM head."""
    return sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and not n.startswith("lm_head"))


def _on_meta(build, cfg):
    with torch.device("meta"):
        return build(cfg)


def architecture_config(base: NirvanaConfig, architecture: str, trigger: str, match_params: bool) -> NirvanaConfig:
    """The Nirvana config of ``architecture``; with ``match_params`` the layer count of ``gated-deltanet``
    and ``transformer`` is chosen so that their non-embedding parameters come closest to Nirvana's."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    cfg = dataclasses.replace(base, trigger=trigger)
    if architecture == "nirvana":
        return cfg
    target = non_embedding_params(_on_meta(NirvanaForCausalLM, cfg))

    def variant(layers: int) -> NirvanaConfig:
        c = dataclasses.replace(cfg, num_hidden_layers=layers, trigger="token")
        return dataclasses.replace(c, num_prelude_layers=layers) if architecture == "gated-deltanet" else c

    if not match_params:
        return variant(cfg.num_hidden_layers)
    sizes = {
        n: non_embedding_params(_on_meta(build_lm, (architecture, variant(n))))
        for n in range(1, 4 * cfg.num_hidden_layers + 1)
    }
    return variant(min(sizes, key=lambda n: abs(sizes[n] - target)))


def build_lm(spec: tuple[str, NirvanaConfig]) -> nn.Module:
    """An untrained causal LM with ``forward(input_ids) -> .logits`` (default init of each library)."""
    architecture, cfg = spec
    if architecture == "transformer":
        import transformers

        return transformers.LlamaForCausalLM(llama_config(cfg))
    return NirvanaForCausalLM(cfg)


class LMPretrainModule(L.LightningModule):
    """Causal language-model pretraining.

    Args:
        config: Nirvana config (``tiny``, ``small``, ``1.3B`` or a ``config.json`` path); its ``vocab_size`` must
            equal the tokenizer's.
        architecture: ``nirvana`` | ``gated-deltanet`` (Nirvana without attention and Trigger in every layer)
            | ``transformer`` (Hugging Face Llama of the same width, heads and MLP size).
        trigger: Nirvana's Trigger mode while training (``token``, ``off``, ``scan``; saved in the config).
        match_params: give ``gated-deltanet`` and ``transformer`` the layer count whose non-embedding parameter
            count is closest to Nirvana's (equal size); otherwise the config's layer count.
        lr, weight_decay, betas: AdamW (decay on matrices, not on embeddings, norms, biases or gates).
        warmup_steps, min_lr_ratio: linear warm-up, then a cosine to ``lr * min_lr_ratio`` over the run's
            progress: the larger of steps / ``max_steps`` and elapsed / ``max_time`` (whichever bound is set).
        seed: seed of the initialisation (Nirvana's seeded scheme; the transformer's library init).
        backend: gated-delta-rule kernel: ``auto`` (fla on CUDA when installed, else torch), ``torch``, ``fla``.
        compile: ``torch.compile`` each block (regional compilation; GPU).
        save_dtype: dtype of the exported weights (``float32``, ``bfloat16``: half the file size).
    """

    def __init__(
        self,
        config: str = "small",
        architecture: str = "nirvana",
        trigger: str = "token",
        match_params: bool = True,
        lr: float = 2e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 200,
        min_lr_ratio: float = 0.1,
        seed: int = 0,
        backend: str = "auto",
        compile: bool = False,
        save_dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model_config = architecture_config(resolve_backbone_config(config), architecture, trigger, match_params)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if architecture == "transformer":
                self.lm = build_lm((architecture, self.model_config))
            else:
                self.lm = NirvanaForCausalLM.from_config(self.model_config, seed=seed)
        self.tokens_seen = 0
        self.curve: list[dict[str, float]] = []  # training loss per logged step
        self.heldout_curve: list[dict[str, float]] = []
        self._val_nll = self._val_count = 0.0

    # ------------------------------------------------------------------ model
    def configure_model(self) -> None:
        if self.hparams.architecture == "transformer":
            if self.hparams.compile:
                for layer in self.lm.model.layers:
                    layer.compile()
            return
        backend = self.hparams.backend
        if backend == "auto":  # the module is not on its device yet: ask the strategy where it will run
            on_cuda = self._trainer is not None and self.trainer.strategy.root_device.type == "cuda"
            backend = "fla" if on_cuda and fla_available() else "torch"
        self.lm.model.backend = backend
        if self.hparams.compile:
            self.lm.model.compile_blocks()

    def forward(self, input_ids: Tensor) -> Tensor:
        """input_ids [B,T] -> logits [B,T,V]."""
        return self.lm(input_ids=input_ids).logits

    def loss(self, window: Tensor, reduction: str = "mean") -> Tensor:
        """window [B,T+1]: next-token cross-entropy of the first T tokens' predictions (float32)."""
        logits = self(window[:, :-1])
        return F.cross_entropy(logits.float().flatten(0, 1), window[:, 1:].flatten(), reduction=reduction)

    # ------------------------------------------------------------------ training
    def progress(self) -> float:
        """Fraction of the run done (steps and/or wall time; 0 when neither bound is set)."""
        t = self.trainer
        p = self.global_step / t.max_steps if t.max_steps and t.max_steps > 0 else 0.0
        timer = next((cb for cb in t.callbacks if isinstance(cb, Timer)), None)
        if timer is not None and timer.time_remaining("train") is not None:
            elapsed = timer.time_elapsed("train")
            p = max(p, elapsed / max(elapsed + timer.time_remaining("train"), 1e-9))
        return min(p, 1.0)

    def lr_now(self) -> float:
        hp = self.hparams
        if self.global_step < hp.warmup_steps:
            return hp.lr * (self.global_step + 1) / hp.warmup_steps
        cosine = 0.5 * (1 + math.cos(math.pi * self.progress()))
        return hp.lr * (hp.min_lr_ratio + (1 - hp.min_lr_ratio) * cosine)

    def on_train_batch_start(self, batch: Tensor, batch_idx: int) -> None:
        lr = self.lr_now()
        for group in self.optimizers().param_groups:
            group["lr"] = lr

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.tokens_seen += batch[:, :-1].numel() * self.trainer.world_size
        self.log("train_loss", loss, prog_bar=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        self.log("tokens", float(self.tokens_seen))
        if self.global_step % max(1, self.trainer.log_every_n_steps) == 0:
            self.curve.append({"step": self.global_step, "tokens": self.tokens_seen, "loss": float(loss.detach())})
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_nll, self._val_count = 0.0, 0.0

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        nll = self.loss(batch, reduction="sum")
        self._val_nll += float(nll)
        self._val_count += batch[:, 1:].numel()

    def on_validation_epoch_end(self) -> None:
        if not self._val_count:
            return
        loss = self._val_nll / self._val_count
        self.log("val_loss", loss, sync_dist=True)
        self.log("val_ppl", math.exp(loss), sync_dist=True)
        if not self.trainer.sanity_checking:
            self.heldout_curve.append({"step": self.global_step, "tokens": self.tokens_seen, "loss": loss})

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        decay, rest = [], []
        for name, p in self.lm.named_parameters():
            (decay if p.dim() >= 2 and "embed" not in name else rest).append(p)
        groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        # not fused: a fused AdamW unscales internally, which Lightning refuses under gradient clipping
        return torch.optim.AdamW(groups, lr=hp.lr, betas=tuple(hp.betas))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["pretrain"] = {"tokens_seen": self.tokens_seen, "curve": self.curve, "heldout": self.heldout_curve}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("pretrain", {})
        self.tokens_seen = state.get("tokens_seen", 0)
        self.curve, self.heldout_curve = list(state.get("curve", [])), list(state.get("heldout", []))

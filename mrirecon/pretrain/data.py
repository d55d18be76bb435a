"""Token streams of the corpus for causal-LM pretraining, and the n-gram baselines on the same tokens."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..io.files import file_sha256, write_atomically
from .corpus import read_corpus
from .tokenizer import EOS_ID, load_tokenizer


def tokenize_split(corpus: str | Path, tokenizer, split: str) -> tuple[np.ndarray, int]:
    """All documents of ``split`` as one id stream, each document followed by ``</s>``; returns the ids
    (uint16 where the vocabulary fits) and the UTF-8 byte count of the text (for bits per byte)."""
    texts = [r["text"] for r in read_corpus(corpus, split)]
    if not texts:
        raise ValueError(f"{corpus}: no documents in split {split!r}")
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 1 << 16 else np.int32
    ids = np.fromiter((i for e in encodings for i in (*e.ids, EOS_ID)), dtype=dtype)
    return ids, sum(len(t.encode()) for t in texts)


class TokenWindows(Dataset):
    """Non-overlapping windows of ``seq_len + 1`` ids (inputs and shifted targets) over one id stream."""

    def __init__(self, ids: np.ndarray, seq_len: int, max_windows: int | None = None) -> None:
        n = (len(ids) - 1) // seq_len
        if n < 1:
            raise ValueError(f"{len(ids)} tokens are fewer than one window of {seq_len + 1}")
        self.ids, self.seq_len, self.n = ids, seq_len, min(n, max_windows or n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        s = i * self.seq_len
        return torch.from_numpy(self.ids[s : s + self.seq_len + 1].astype(np.int64))


class ShuffledStream(Sampler[int]):
    """``num_samples`` indices: one seeded permutation of ``range(n)`` per pass, passes concatenated.

    ``start`` skips the first indices, so a run resumed at step k sees exactly the samples an uninterrupted
    run sees from step k on; the length stays ``num_samples`` (the trainer counts batches from the start).
    """

    def __init__(self, n: int, num_samples: int, seed: int, start: int = 0) -> None:
        self.n, self.num_samples, self.seed, self.start = n, num_samples, seed, start

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        pos = self.start
        while pos < self.num_samples:
            epoch, offset = divmod(pos, self.n)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            for i in perm[offset : offset + self.num_samples - pos]:
                yield int(i)
            pos += self.n - offset


class CorpusDataModule(L.LightningDataModule):
    """Train and held-out windows of ``corpus.jsonl.xz`` tokenized with ``tokenizer.json``.

    Args:
        corpus: the corpus file written by ``python -m mrirecon.pretrain.corpus``.
        tokenizer: its ``tokenizer.json``.
        seq_len: tokens per training window T (inputs [B,T], targets [B,T]).
        batch_size: windows per step B.
        heldout_tokens: at most this many held-out tokens are scored (the first windows of the split).
        seed: seed of the training order (equal seeds and batch shapes = the same tokens in the same order).
        cache_dir: where the tokenized streams are cached (default: beside the corpus).
        num_workers: DataLoader worker processes.
    """

    def __init__(
        self,
        corpus: str = "corpus/corpus.jsonl.xz",
        tokenizer: str = "corpus/tokenizer.json",
        seq_len: int = 512,
        batch_size: int = 32,
        heldout_tokens: int = 1_000_000,
        seed: int = 0,
        cache_dir: str | None = None,
        num_workers: int = 2,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_ids: np.ndarray | None = None
        self.heldout_ids: np.ndarray | None = None
        self.heldout_bytes_per_token = float("nan")

    @property
    def vocab_size(self) -> int:
        return load_tokenizer(self.hparams.tokenizer).get_vocab_size()

    def facts(self) -> dict:
        """Provenance of the data: file hashes and token counts."""
        return {
            "corpus_sha256": file_sha256(self.hparams.corpus),
            "tokenizer_sha256": file_sha256(self.hparams.tokenizer),
            "train_tokens": int(len(self.train_ids)),
            "heldout_tokens_scored": int(self.heldout_windows().n * self.hparams.seq_len),
            "heldout_bytes_per_token": self.heldout_bytes_per_token,
        }

    def setup(self, stage: str | None = None) -> None:
        if self.train_ids is not None:
            return
        hp = self.hparams
        for p in (hp.corpus, hp.tokenizer):
            if not Path(p).is_file():
                raise FileNotFoundError(f"{p}: not found (build it with python -m mrirecon.pretrain.corpus)")
        key = hashlib.sha256((file_sha256(hp.corpus) + file_sha256(hp.tokenizer)).encode()).hexdigest()[:16]
        cache = Path(hp.cache_dir or Path(hp.corpus).parent) / f"tokens-{key}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                self.train_ids, self.heldout_ids = z["train"], z["heldout"]
                self.heldout_bytes_per_token = float(z["heldout_bytes"]) / len(self.heldout_ids)
            return
        tok = load_tokenizer(hp.tokenizer)
        self.train_ids, _ = tokenize_split(hp.corpus, tok, "train")
        self.heldout_ids, heldout_bytes = tokenize_split(hp.corpus, tok, "heldout")
        self.heldout_bytes_per_token = heldout_bytes / len(self.heldout_ids)
        arrays = {"train": self.train_ids, "heldout": self.heldout_ids, "heldout_bytes": heldout_bytes}
        write_atomically(cache, lambda tmp: np.savez(tmp, **arrays), ".npz")

    def heldout_windows(self) -> TokenWindows:
        hp = self.hparams
        return TokenWindows(self.heldout_ids, hp.seq_len, max(1, hp.heldout_tokens // hp.seq_len))

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        windows = TokenWindows(self.train_ids, hp.seq_len)
        trainer = self.trainer
        per_step = hp.batch_size * (trainer.accumulate_grad_batches if trainer else 1)
        steps = trainer.max_steps if trainer and trainer.max_steps > 0 else 10**7 // per_step
        start = trainer.global_step * per_step if trainer else 0
        sampler = ShuffledStream(len(windows), steps * per_step, hp.seed, start)
        return DataLoader(
            windows,
            batch_size=hp.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.heldout_windows(), batch_size=self.hparams.batch_size, num_workers=0)


def ngram_baselines(train: np.ndarray, heldout: TokenWindows, vocab_size: int) -> dict[str, float]:
    """Held-out perplexity of an add-one unigram model and of a bigram model interpolated with it, scored
    on the same target positions as the network (each window's targets given the previous token).

    The bigram weight is picked on the held-out targets themselves (grid search), which flatters the
    baseline: the comparison is conservative.
    """
    V = vocab_size
    train = train.astype(np.int64)
    uni = (np.bincount(train, minlength=V) + 1.0) / (len(train) + V)
    pairs, counts = np.unique(train[:-1] * V + train[1:], return_counts=True)
    ctx = np.bincount(train[:-1], minlength=V).astype(np.float64)
    win = np.stack([heldout[i].numpy() for i in range(len(heldout))])
    prev, nxt = win[:, :-1].ravel(), win[:, 1:].ravel()
    keys = prev * V + nxt
    at = np.clip(np.searchsorted(pairs, keys), 0, len(pairs) - 1)
    c_pair = np.where(pairs[at] == keys, counts[at], 0).astype(np.float64)
    p_bi = np.divide(c_pair, ctx[prev], out=np.zeros_like(c_pair), where=ctx[prev] > 0)
    p_uni = uni[nxt]
    best = min(-np.mean(np.log(lam * p_bi + (1 - lam) * p_uni)) for lam in np.linspace(0.0, 0.99, 34))
    return {
        "unigram_ppl": float(math.exp(-np.mean(np.log(p_uni)))),
        "bigram_ppl": float(math.exp(best)),
        "tokens": int(len(nxt)),
    }

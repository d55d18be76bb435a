"""LightningDataModule over fastMRI folders (real files or the embedded simulated set)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from fastmri.data.volume_sampler import VolumeSampler
from torch.utils.data import DataLoader, DistributedSampler

from mrirecon.data.dataset import ValidatedSliceDataset
from mrirecon.data.masks import make_mask_func
from mrirecon.data.synth import ensure_dataset
from mrirecon.data.transforms import SliceTransform
from mrirecon.data.validate import InvalidInputError

log = logging.getLogger(__name__)


class _LightningVolumeSampler(VolumeSampler, DistributedSampler):
    """fastMRI's VolumeSampler, typed as a DistributedSampler so Lightning does not wrap it again."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle: bool = False, seed: int = 0):
        VolumeSampler.__init__(self, dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        # Distributed fix: with fewer volumes than processes, fastMRI's sampler leaves a process without
        # slices (its __iter__ then divides by zero). Such a process re-runs the volumes of process
        # ``rank % n_volumes`` (same batches, same number of steps, so collectives stay in step);
        # ReconModule keeps the first (owning) process's copy of every volume's metrics.
        if not self.indices and self.all_volume_names:
            donor = set(self.all_volumes_split[self.rank % len(self.all_volume_names)])
            self.indices = [i for i, sample in enumerate(dataset.raw_samples) if str(sample[0]) in donor]


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class FastMRIDataModule(L.LightningDataModule):
    """Train/val/test loaders of ``VarNetSample`` slices from ``data_path/{train,val,<test_split>}``.

    Training masks are random per call; validation and test masks are fixed per file (seed from the
    file name); test-format files use their own mask. Every file is validated in ``setup`` (a bad
    file raises :class:`InvalidInputError` naming it). With ``synth=True`` and no ``train/`` folder,
    ``prepare_data`` writes the embedded simulated dataset (small preset) under ``data_path``.
    With ``volume_sampler=True`` under torch.distributed, validation/test use fastMRI's VolumeSampler
    so every volume stays on one process.
    """

    def __init__(
        self,
        data_path: str | Path = "data/synth",
        challenge: str = "multicoil",
        mask_type: str = "equispaced_fraction",
        accelerations: list[int] = [4, 8],  # noqa: B006 - shown as-is by LightningCLI, never mutated
        center_fractions: list[float] = [0.08, 0.04],  # noqa: B006
        batch_size: int = 1,
        num_workers: int = 0,
        sample_rate: float = 1.0,
        volume_sampler: bool = True,
        test_split: str = "test",
        synth: bool = True,
        synth_preset: str = "small",
        synth_seed: int = 0,
        check_values: bool = False,
    ):
        super().__init__()
        if challenge not in ("multicoil", "singlecoil"):
            raise ValueError(f"challenge must be 'multicoil' or 'singlecoil', not {challenge!r}")
        self.data_path = Path(data_path)
        self.challenge = challenge
        self.mask_type = mask_type
        self.accelerations = list(accelerations)
        self.center_fractions = list(center_fractions)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.sample_rate = sample_rate
        self.volume_sampler = volume_sampler
        self.test_split = test_split
        self.synth = synth
        self.synth_preset = synth_preset
        self.synth_seed = synth_seed
        self.check_values = check_values
        make_mask_func(mask_type, self.accelerations, self.center_fractions)  # fail early on bad args
        self.datasets: dict[str, ValidatedSliceDataset] = {}

    def prepare_data(self) -> None:
        if self.synth and not (self.data_path / "train").is_dir():
            log.info("no data under %s: writing the simulated dataset (%s)", self.data_path, self.synth_preset)
            ensure_dataset(self.data_path, preset=self.synth_preset, seed=self.synth_seed)

    def _dataset(self, split: str, train: bool) -> ValidatedSliceDataset:
        if split not in self.datasets:
            folder = self.data_path / split
            if not folder.is_dir():
                raise InvalidInputError(folder, f"'{split}' folder not found under {self.data_path}")
            mask_func = make_mask_func(self.mask_type, self.accelerations, self.center_fractions)
            self.datasets[split] = ValidatedSliceDataset(
                folder,
                challenge=self.challenge,
                transform=SliceTransform(mask_func, use_seed=not train),
                sample_rate=self.sample_rate if train else None,
                check_values=self.check_values,
            )
            if len(self.datasets[split]) == 0:
                raise InvalidInputError(folder, "no slices found (no .h5 files?)")
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._dataset("train", train=True)
        if stage in (None, "fit", "validate"):
            self._dataset("val", train=False)
        if stage in (None, "test", "predict"):
            self._dataset(self.test_split, train=False)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self._dataset(split, train)
        sampler = None
        if not train and self.volume_sampler and _distributed():
            sampler = _LightningVolumeSampler(ds, shuffle=False)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, train=False)

"""LightningDataModule over fastMRI folders (real files or the embedded simulated set)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from fastmri.data.volume_sampler import VolumeSampler
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from mrirecon.data.dataset import ValidatedSliceDataset
from mrirecon.data.synth import ensure_dataset
from mrirecon.data.transforms import SliceTransform, WithEspiritMaps
from mrirecon.data.validate import InvalidInputError
from mrirecon.physics.masks import make_mask_func

log = logging.getLogger(__name__)


def one_thread(worker_id: int) -> None:
    """A data-loader worker's BLAS (under numpy) runs on one thread, as torch already does there. Each worker
    otherwise starts a BLAS thread per core for its ESPIRiT calibrations, and a dozen workers starved the training
    step of its CPU (results/default_v21)."""
    threadpool_limits(1)


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


class ShapeBatchSampler(Sampler[list[int]]):
    """Batches of slices that share one k-space shape and crop size, so mixed matrix sizes batch.

    Each epoch shuffles (seed + epoch) within shape groups, cuts them into batches of ``batch_size``
    (the last batch of a group may be smaller) and shuffles the batch order. Under torch.distributed each
    process takes every ``world``-th batch of a list trimmed to a multiple of the world size (equal
    step counts), so under DDP set the trainer's ``use_distributed_sampler: false``. Call ``set_epoch``
    for a new order (Lightning does).
    """

    def __init__(self, dataset: ValidatedSliceDataset, batch_size: int, shuffle: bool = True, seed: int = 0):
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0
        groups: dict[tuple, list[int]] = {}
        for i, (fname, _, _) in enumerate(dataset.raw_samples):
            info = dataset.file_info[str(fname)]
            groups.setdefault((tuple(info.kspace_shape[1:]), tuple(info.crop_size)), []).append(i)
        self.groups = list(groups.values())
        self.rank, self.world = (
            (torch.distributed.get_rank(), torch.distributed.get_world_size()) if _distributed() else (0, 1)
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = []
        for group in self.groups:
            order = [group[i] for i in torch.randperm(len(group), generator=g)] if self.shuffle else group
            batches += [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g)]
        usable = len(batches) - len(batches) % self.world if len(batches) >= self.world else len(batches)
        return batches[:usable][self.rank :: self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class FastMRIDataModule(L.LightningDataModule):
    """Train/val/test loaders of ``VarNetSample`` slices from ``data_path/{train,val,<test_split>}``.

    Training masks are random per call; validation and test masks are fixed per file (seed from the
    file name); test-format files use their own mask. ``mask_type="mixed"`` draws the mask type
    (random / equispaced / equispaced_fraction), the acceleration from ``accelerations`` and the centre
    fraction in [min, max] of ``center_fractions`` per slice, with a partial-Fourier cut with probability
    ``partial_fourier_prob``. Training batches of ``batch_size`` > 1 group slices of one k-space
    shape (mixed matrix sizes; :class:`ShapeBatchSampler`). Every file is validated in ``setup`` (a bad
    file raises :class:`InvalidInputError` naming it). With ``synth=True`` and no ``train/`` folder,
    ``prepare_data`` writes the embedded simulated dataset (small preset) under ``data_path``.
    With ``volume_sampler=True`` under torch.distributed, validation/test use fastMRI's VolumeSampler
    so every volume stays on one process. ``espirit_virtual_coils`` (None: off): every sample also carries the
    ESPIRiT maps of that many virtual coils (0: of the physical coils), computed in the loader's workers, for a
    ``ReconModel`` trained through its ``espirit`` final solve (give the model's ``virtual_coils`` and, as
    ``espirit_crop``, its ``final_solve_crop``).
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
        partial_fourier_prob: float = 0.0,
        espirit_virtual_coils: int | None = None,
        espirit_crop: float = 0.0,
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
        self.partial_fourier_prob = partial_fourier_prob
        self.espirit_virtual_coils = espirit_virtual_coils
        self.espirit_crop = espirit_crop
        self._mask_func()  # fail early on bad args
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
            transform = SliceTransform(self._mask_func(), use_seed=not train)
            if self.espirit_virtual_coils is not None:
                transform = WithEspiritMaps(transform, self.espirit_virtual_coils, self.espirit_crop)
            self.datasets[split] = ValidatedSliceDataset(
                folder,
                challenge=self.challenge,
                transform=transform,
                sample_rate=self.sample_rate if train else None,
                check_values=self.check_values,
            )
            if len(self.datasets[split]) == 0:
                raise InvalidInputError(folder, "no slices found (no .h5 files?)")
        return self.datasets[split]

    def _mask_func(self):
        return make_mask_func(
            self.mask_type, self.accelerations, self.center_fractions, partial_fourier_prob=self.partial_fourier_prob
        )

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self._dataset("train", train=True)
        if stage in (None, "fit", "validate"):
            self._dataset("val", train=False)
        if stage in (None, "test", "predict"):
            self._dataset(self.test_split, train=False)

    def _loader(self, split: str, train: bool, group_shapes: bool = True) -> DataLoader:
        ds = self._dataset(split, train)
        common = dict(num_workers=self.num_workers, persistent_workers=self.num_workers > 0, worker_init_fn=one_thread)
        sampler = None
        if not train and self.volume_sampler and _distributed():
            sampler = _LightningVolumeSampler(ds, shuffle=False)
        if self.batch_size > 1 and sampler is None and group_shapes:
            batches = ShapeBatchSampler(ds, self.batch_size, shuffle=train, seed=self.synth_seed)
            if train or len(batches.groups) > 1:  # evaluation keeps plain batches when all shapes agree
                return DataLoader(ds, batch_sampler=batches, **common)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=train and sampler is None, sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_split, train=False)

    def predict_dataloader(self) -> DataLoader:
        # Lightning rebuilds prediction loaders around its own sampler, which a batch sampler cannot take
        return self._loader(self.test_split, train=False, group_shapes=False)

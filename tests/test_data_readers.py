"""Reader paths: multicoil/singlecoil, oversampled k-space, test format, header-less files, masks, datamodule."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.data import SliceDataset
from fastmri.data.transforms import VarNetDataTransform
from torch.utils.data import DistributedSampler

from mrirecon.data import (
    FastMRIDataModule,
    SliceTransform,
    ValidatedSliceDataset,
    fixed_seed,
    make_mask_func,
    read_volume,
    sample_mask,
    validate_file,
)
from mrirecon.data.ismrmrd import make_header


def knee_like(path: Path, challenge="multicoil", test_format=False, header=True, coils=15) -> Path:
    """A knee-shaped file at 1/10 scale: k-space 64x37 (readout oversampled), target 32x32."""
    rng = np.random.default_rng(1)
    S, H, W = 3, 64, 37
    shape = (S, coils, H, W) if challenge == "multicoil" else (S, H, W)
    k = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    with h5py.File(path, "w") as hf:
        if test_format:
            mask = np.zeros(W, bool)
            mask[::4] = True
            mask[W // 2 - 2 : W // 2 + 2] = True
            hf["kspace"] = k * mask
            hf["mask"] = mask
            hf.attrs["acceleration"] = 4
            hf.attrs["num_low_frequency"] = 4
        else:
            hf["kspace"] = k
            key = "reconstruction_rss" if challenge == "multicoil" else "reconstruction_esc"
            hf[key] = rng.random((S, 32, 32)).astype(np.float32)
            hf.attrs["max"] = 1.0
        if header:
            hf["ismrmrd_header"] = make_header((H, W), (32, 32), 0.5, coils, S)
    return path


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_read_volume_train_format(tmp_path, challenge):
    v = read_volume(knee_like(tmp_path / "k.h5", challenge))
    assert v.kspace.dtype == np.complex64
    assert v.kspace.shape == ((3, 15, 64, 37) if challenge == "multicoil" else (3, 1, 64, 37))
    assert v.target.shape == (3, 32, 32) and v.target.dtype == np.float32
    assert v.crop_size == (32, 32) and v.max_value == 1.0 and v.mask is None and v.challenge == challenge


@pytest.mark.parametrize("challenge", ["multicoil", "singlecoil"])
def test_slice_transform_train_format(tmp_path, challenge):
    folder = tmp_path / challenge
    folder.mkdir()
    knee_like(folder / "k.h5", challenge)
    ds = ValidatedSliceDataset(folder, challenge, transform=SliceTransform(make_mask_func("random", [4], [0.08])))
    s = ds[1]
    C = 15 if challenge == "multicoil" else 1
    assert s.masked_kspace.shape == (C, 64, 37, 2) and s.masked_kspace.dtype == torch.float32
    assert s.mask.shape == (1, 1, 37, 1) and s.mask.dtype == torch.bool
    assert s.num_low_frequencies == round(37 * 0.08)
    assert s.target.shape == (32, 32) and s.crop_size == (32, 32) and s.max_value == 1.0
    # unsampled columns are zero
    cols = ~s.mask.reshape(-1)
    assert torch.count_nonzero(s.masked_kspace[..., cols, :]) == 0


def test_test_format_file(tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    path = knee_like(folder / "test.h5", test_format=True)
    info = validate_file(path)
    assert info.is_test_format and info.recon_key is None and info.acceleration == 4
    assert info.num_low_frequencies == 4 and info.mask.sum() == 13
    # the mask func must be ignored: the file's own mask is used
    ds = ValidatedSliceDataset(folder, transform=SliceTransform(make_mask_func("equispaced", [8], [0.04])))
    s = ds[0]
    assert torch.equal(s.mask.reshape(-1), torch.from_numpy(info.mask))
    assert s.num_low_frequencies == 4 and s.max_value == 0.0
    assert s.target.shape == (32, 32) and float(s.target.abs().sum()) == 0.0
    v = read_volume(path)
    assert v.is_test_format and v.target is None and v.max_value is None and v.num_low_frequencies == 4


def test_headerless_file_uses_target_shape(tmp_path):
    folder = tmp_path / "h"
    folder.mkdir()
    knee_like(folder / "nohdr.h5", header=False)
    info = validate_file(folder / "nohdr.h5")
    assert not info.has_header and info.crop_size == (32, 32)
    s = ValidatedSliceDataset(folder, transform=SliceTransform(make_mask_func("equispaced", [4], [0.08])))[0]
    assert s.crop_size == (32, 32) and s.masked_kspace.shape == (15, 64, 37, 2)


@pytest.mark.parametrize("mask_type", ["random", "equispaced", "equispaced_fraction"])
@pytest.mark.parametrize(("acc", "cf"), [(4, 0.08), (8, 0.04)])
def test_masks(mask_type, acc, cf):
    W = 320
    func = make_mask_func(mask_type, [acc], [cf])
    m1, nlf = sample_mask(func, W, seed=fixed_seed("file_brain_001.h5"))
    m2, _ = sample_mask(func, W, seed=fixed_seed("file_brain_001.h5"))
    assert nlf == round(W * cf)
    assert np.array_equal(m1, m2)  # fixed per file
    assert m1[W // 2 - nlf // 2 : W // 2 + nlf // 2].all()  # dense centre
    frac = m1.mean()
    if mask_type == "equispaced_fraction":
        assert abs(frac - 1 / acc) < 0.01
    elif mask_type == "equispaced":
        assert 1 / acc - 0.01 < frac < 1 / acc + cf
    else:
        assert abs(frac - 1 / acc) < 0.08
    others = [sample_mask(func, W, seed=fixed_seed(f"file_{i}.h5"))[0] for i in range(6)]
    assert any(not np.array_equal(m1, o) for o in others)


def test_mask_helpers():
    assert fixed_seed("ab.h5") == (97, 98, 46, 104, 53)
    with pytest.raises(ValueError, match="unknown mask_type"):
        make_mask_func("poisson", [4], [0.08])
    with pytest.raises(ValueError, match="same length"):
        make_mask_func("random", [4, 8], [0.08])


def test_train_masks_random_val_masks_fixed(synth_root):
    ds_train = ValidatedSliceDataset(
        synth_root / "train", transform=SliceTransform(make_mask_func("random", [4], [0.08]), use_seed=False)
    )
    masks = {tuple(ds_train[0].mask.reshape(-1).tolist()) for _ in range(5)}
    assert len(masks) > 1
    ds_val = ValidatedSliceDataset(synth_root / "val", transform=SliceTransform(make_mask_func("random", [4], [0.08])))
    a, b = ds_val[0], ds_val[1]  # two slices of one volume share the mask
    assert a.fname == b.fname and torch.equal(a.mask, b.mask)
    assert torch.equal(ds_val[0].mask, a.mask)


def test_fastmri_slicedataset_reads_synth(synth_root):
    """fastMRI's own SliceDataset + VarNetDataTransform load the simulated files unchanged."""
    func = make_mask_func("equispaced_fraction", [4], [0.08])
    ds = SliceDataset(synth_root / "train", "multicoil", transform=VarNetDataTransform(func))
    assert len(ds) == 4
    s = ds[0]
    assert s.masked_kspace.shape == (8, 128, 128, 2) and s.target.shape == (128, 128)
    assert s.crop_size == (128, 128) and s.max_value >= float(s.target.max()) > 0
    ds_test = SliceDataset(synth_root / "shift_test_format", "multicoil", transform=VarNetDataTransform())
    t = ds_test[0]
    assert t.masked_kspace.shape[1:] == (256, 128, 2) and 12 <= t.masked_kspace.shape[0] <= 16
    assert t.crop_size == (128, 128)


def test_datamodule(synth_root):
    dm = FastMRIDataModule(synth_root, synth=False, test_split="test_format", batch_size=2)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.masked_kspace.shape == (2, 8, 128, 128, 2) and batch.target.shape == (2, 128, 128)
    val = list(dm.val_dataloader())
    assert sum(len(b.fname) for b in val) == 2
    test = next(iter(dm.test_dataloader()))
    assert float(test.max_value.max()) == 0.0 and test.target.shape == (2, 128, 128)
    # volume sampler: whole volumes per rank, typed so Lightning leaves it alone
    from mrirecon.data.datamodule import _LightningVolumeSampler

    ds = dm.datasets["test_format"]
    parts = [set(_LightningVolumeSampler(ds, num_replicas=2, rank=r)) for r in (0, 1)]
    assert isinstance(_LightningVolumeSampler(ds, num_replicas=2, rank=0), DistributedSampler)
    names = [{ds.raw_samples[i][0].name for i in p} for p in parts]
    assert names[0].isdisjoint(names[1]) and len(names[0] | names[1]) == 4


class _WorkerThreads(torch.utils.data.Dataset):
    """Reports, from inside a loader worker, torch's thread count and the BLAS pools' under numpy."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[int, list[int]]:
        from threadpoolctl import threadpool_info

        return torch.get_num_threads(), [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_loader_workers_compute_on_one_thread(synth_root, monkeypatch):
    """Every loader of the data module runs its workers single-threaded (ESPIRiT calibrations in a dozen workers,
    each with a BLAS thread per core, starved the training step on the GPU machine)."""
    dm = FastMRIDataModule(synth_root, synth=False, num_workers=1)
    monkeypatch.setattr(dm, "_dataset", lambda split, train: _WorkerThreads())
    torch_threads, blas = next(iter(dm.train_dataloader()))
    assert int(torch_threads) == 1 and blas and all(int(n) == 1 for n in blas)


def test_datamodule_generates_when_missing(tmp_path):
    dm = FastMRIDataModule(tmp_path / "fresh", synth_preset="tiny")
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 4 and len(dm.datasets["val"]) == 2
    with pytest.raises(ValueError, match="unknown mask_type"):
        FastMRIDataModule(tmp_path, mask_type="nope")


def test_training_masks_repeat_with_the_torch_seed_and_vary_per_call():
    from mrirecon.data.transforms import SliceTransform
    from mrirecon.physics.masks import make_mask_func

    kspace = np.ones((2, 16, 64), np.complex64)
    attrs = {"padding_left": 0, "padding_right": 64, "encoding_size": (16, 64, 1), "recon_size": (16, 64, 1)}

    def draws(seed):
        torch.manual_seed(seed)
        transform = SliceTransform(make_mask_func("mixed", [4, 8], [0.04, 0.12]), use_seed=False)
        return [transform(kspace, None, None, attrs, "f.h5", 0).mask.flatten().clone() for _ in range(4)]

    a, b, c = draws(0), draws(0), draws(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # a run's masks repeat
    assert not all(torch.equal(x, a[0]) for x in a[1:])  # but differ from call to call
    assert not all(torch.equal(x, y) for x, y in zip(a, c))  # and with the seed

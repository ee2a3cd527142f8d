"""lossviz.devices: the one device helper and the one seed helper."""

import pytest
import torch

import lossviz as lv


def test_cpu_is_always_listed_first():
    found = lv.devices.available_devices()
    assert found[0] == "cpu"
    assert lv.devices.default_device() in found
    assert (len(found) == 1) == ("Only the CPU" in lv.devices.describe_devices())


def test_resolve_device_rejects_missing_devices():
    assert lv.devices.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            lv.devices.resolve_device("cuda:0")


def test_seed_all_makes_draws_repeat():
    lv.seed_all(5)
    a = torch.randn(3)
    gen = lv.seed_all(5)
    assert torch.equal(a, torch.randn(3))
    assert torch.equal(torch.randn(2, generator=gen), torch.randn(2, generator=lv.seed_all(5)))


def test_torch_threads_sets_the_count_for_the_block_and_restores_it():
    import torch

    from lossviz.devices import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="inside"), torch_threads(1):
        raise RuntimeError("an error inside the block")
    assert torch.get_num_threads() == before  # restored on the error path too
    with torch_threads(None):  # None: left as it is
        assert torch.get_num_threads() == before

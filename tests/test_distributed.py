"""A real 2-rank DDP step (gloo on 127.0.0.1): its gradients are the ones W predicts."""

import multiprocessing
import os
import socket

import pytest
import torch

import lossviz as lv
from lossviz.distributed import free_port

pytestmark = pytest.mark.distributed


def _children() -> list[int]:
    """Live (non-zombie) child processes of this test process, read from Linux /proc.

    Python's own multiprocessing resource tracker is left out: the spawn start method starts one
    per interpreter and it lives (idle) until the interpreter exits, whatever the workers do.
    """
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            if b"resource_tracker" not in cmdline:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_two_rank_ddp_gradients_equal_what_w_predicts():
    before = _children()
    r = lv.run_ddp([12, 40, 7, 30, 5], world_size=2, ga_steps=2, timeout=90)
    for n in ("naive", "global"):
        g = r["grads"][n]
        assert g.shape[0] == 2
        assert torch.equal(g[0], g[1])  # DDP leaves every rank with the same averaged gradient
        assert r["max_abs_diff"][n] < 1e-6
    gap = (r["predicted"]["naive"] - r["predicted"]["global"]).abs().max()
    assert gap > 1e-3  # the two normalizations really differ on this batch
    assert not any(_alive(p) for p in r["pids"])
    assert multiprocessing.active_children() == []
    assert _children() == before


def test_a_failing_rank_ends_the_group_with_a_clear_error_and_no_process_left():
    before = _children()
    with pytest.raises(lv.distributed.DistributedRunError, match="rank 1 of 2 failed") as info:
        lv.run_ddp([4, 3, 9, 1], world_size=2, fail_rank=1, timeout=60)
    assert "injected failure" in str(info.value)
    assert len(info.value.pids) == 2
    assert not any(_alive(p) for p in info.value.pids)
    assert multiprocessing.active_children() == []
    assert _children() == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"world_size": 1}, "between 2 and 8"),
        ({"world_size": 2, "normalizations": ("mean",)}, "normalize"),
        ({"world_size": 3}, "one per rank"),
    ],
)
def test_bad_setups_fail_before_any_process_starts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lv.run_ddp([4, 3], **kwargs)
    assert multiprocessing.active_children() == []


def test_three_ranks_with_an_empty_micro_batch_still_match_w():
    # 5 samples, 3 ranks, 2 GA steps: rank 2 holds one sample, so its second micro-batch is empty
    assert lv.step_shape.deal(5, ga_steps=2, world_size=3)[2] == [[2], []]
    r = lv.run_ddp(
        [9, 2, 30, 4, 11],
        world_size=3,
        ga_steps=2,
        normalizations=("naive", "global", "sum"),
        timeout=120,
    )
    for n in ("naive", "global", "sum"):
        assert r["grads"][n].shape[0] == 3
        assert r["max_abs_diff"][n] < 1e-6
    assert multiprocessing.active_children() == []


def test_a_group_that_runs_past_its_timeout_is_ended():
    before = _children()
    with pytest.raises(
        lv.distributed.DistributedRunError, match="did not finish within 0.5 s"
    ) as info:
        lv.run_ddp([4, 3], world_size=2, timeout=0.5)
    assert not any(_alive(p) for p in info.value.pids)
    assert _children() == before

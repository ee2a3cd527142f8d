"""``lv.probe(model, save_to=DIR)`` in a user's own 2-process script, merged by ``lossviz probe-merge``.

The script is launched for real with torchrun (``python -m torch.distributed.run``, gloo on
127.0.0.1, CPU): DDP, two micro-batches per rank (GA 2, ``no_sync`` on the first). Its process
group is ended in ``finally`` whatever happens, so no process is left behind.
"""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from lossviz.commands import main
from lossviz.commands.probe_merge import merge
from lossviz.distributed import free_port
from lossviz.probe import MicroBatch, ProbeRecord, load_records

ROOT = Path(__file__).parents[1]

SCRIPT = textwrap.dedent(
    """
    import contextlib
    import sys

    import torch
    import torch.distributed as dist

    import lossviz as lv
    from lossviz.model import TinyCausalLM, TinyConfig
    from lossviz.step_gradients import token_batch

    def main(folder, mode):
        rank, world = dist.get_rank(), dist.get_world_size()
        model = torch.nn.parallel.DistributedDataParallel(TinyCausalLM(TinyConfig()))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        lengths = [[3, 9], [4, 6]] if rank == 0 else [[12, 2], [5, 7]]
        batches = [token_batch(ls, seed=10 * rank + k) for k, ls in enumerate(lengths)]
        n = torch.tensor(float(sum(map(sum, lengths))))
        dist.all_reduce(n)  # the step's trained tokens over every rank and micro-batch
        with lv.probe(model, save_to=folder):
            for k, batch in enumerate(batches):
                with model.no_sync() if k == 0 else contextlib.nullcontext():
                    logits = model(batch.input_ids, position_ids=batch.position_ids)
                    if mode == "global":  # DDP averages over ranks: x world
                        loss = lv.cross_entropy(logits, batch.labels, "sum", shift=True) / n * world
                    else:  # each micro-batch's own token mean, / GA
                        loss = lv.cross_entropy(logits, batch.labels, "mean", shift=True) / 2
                    loss.backward()
            opt.step()
        dist.barrier()  # every rank is done with the group


    if __name__ == "__main__":
        dist.init_process_group("gloo")
        try:
            # the model (which holds the group) is freed when main returns, not while Python exits
            main(sys.argv[1], sys.argv[2])
        finally:
            dist.destroy_process_group()
    """
)
LENGTHS = [3, 9, 4, 6, 12, 2, 5, 7]  # rank 0's two micro-batches, then rank 1's


def _launch(tmp_path: Path, mode: str) -> Path:
    script, folder = tmp_path / "train.py", tmp_path / f"records_{mode}"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(script),
        str(folder),
        mode,
    ]
    # its own session: the launcher and both ranks are one process group, killed as one
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out.decode()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        else:  # the launcher is gone: end any rank it left
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe_mp")
    return {mode: _launch(tmp, mode) for mode in ("global", "naive")}


def test_a_two_process_script_merges_into_the_global_token_mean(runs, capsys):
    records = load_records(runs["global"])
    assert [mb.rank for rec in records for mb in rec.micro_batches] == [0, 0, 1, 1]
    assert all(mb.world_size == 2 and mb.via == "logits" for r in records for mb in r.micro_batches)
    result = merge(str(runs["global"]))
    assert result["lengths"] == LENGTHS and result["plan"] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]
    N = sum(LENGTHS)
    # float32 logits: each recovered weight is within ~1e-7 of 1/N
    flat = [w for row in result["measured"] for w in row]
    assert len(flat) == N and max(abs(w * N - 1) for w in flat) < 1e-6
    assert "global" in result["matches"] and result["max_residual"] < 1e-5
    assert main(["probe-merge", str(runs["global"])]) == 0
    out = capsys.readouterr().out
    assert "your run" in out and "matches lossviz's `global` model within 1e-6" in out
    assert "Worst ratio to the full-batch token mean: 1.000x (up), 1.000x (down)" in out


def test_the_merge_names_a_per_micro_batch_mean(runs, capsys):
    result = merge(str(runs["naive"]))
    assert "global" not in result["matches"] and "naive" in result["matches"]
    # the 2-token sample on rank 1 weighs 1/4 of its micro-batch mean: 2/14 / 2 / 2 of the step
    share = result["diff"]["naive"]["measured_share"]
    assert abs(share[5] - 2 / 14 / 4) < 1e-6
    assert main(["probe-merge", str(runs["naive"])]) == 0
    out = capsys.readouterr().out
    assert "differs from lossviz's `global` model" in out and "`naive`" in out


def test_probe_merge_names_a_bad_folder(tmp_path, capsys):
    assert main(["probe-merge", str(tmp_path / "absent")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["probe-merge", str(tmp_path)]) == 2
    assert "holds no rank*.json" in capsys.readouterr().err
    rec = ProbeRecord()
    one = torch.ones(1, 3)
    rec.slots.append(MicroBatch(one.long(), one.double(), 0 * one, None, 0, 1, 2))
    rec.save(tmp_path, rank=1)  # rank 0 of 2 is missing
    assert main(["probe-merge", str(tmp_path)]) == 2
    assert "rank0..rank1.json" in capsys.readouterr().err

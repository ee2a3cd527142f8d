"""Issue 11, one test per row: bad or edge input gets a right answer or a clear error, never a wrong
number, a raw error, a hang or a leaked process."""

import json
import multiprocessing
import subprocess
import sys
import time
import tracemalloc

import pytest
import torch

import lossviz as lv
from lossviz import chat, precision, rl
from lossviz.checks import parse_list
from lossviz.commands import main
from lossviz.step_audit import audit_table


# -- float16 / bfloat16 token counts ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_70000_low_precision_tokens_give_the_float32_loss_and_gradient(dtype):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 70_000, 8, generator=gen).to(dtype).requires_grad_()
    labels = torch.randint(0, 8, (1, 70_000), generator=gen)
    loss = lv.cross_entropy(logits, labels)
    loss.backward()
    ref = torch.nn.functional.cross_entropy(logits.detach().double().view(-1, 8), labels.view(-1))
    assert loss.dtype == dtype  # the dtype F.cross_entropy returns for these logits
    # per-token log-softmax in the logits' dtype, then one rounding of the mean: well under 4 eps
    assert abs(float(loss.detach()) - float(ref)) < 4 * torch.finfo(dtype).eps * float(ref)
    assert float(logits.grad.float().abs().sum()) > 0.5  # before: loss 0, gradient 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_weights_and_reduce_count_in_float32_whatever_the_mask_dtype(dtype):
    mask = torch.ones(1, 70_000, dtype=dtype)
    w = lv.weights(mask)
    assert w.dtype == torch.float32
    assert abs(float(w.sum()) - 1) < 1e-4  # float32 sum of 70,000 terms 1/N: error ~1e-6
    assert lv.sample_weights(mask).tolist() == [1.0]
    losses = torch.full((1, 70_000), 2.0, dtype=dtype)
    out = lv.reduce(losses, torch.ones(1, 70_000))
    assert out.dtype == dtype and float(out) == 2.0


def test_a_sum_that_overflows_float16_warns_instead_of_a_silent_inf():
    with pytest.warns(RuntimeWarning, match="does not fit torch.float16"):
        lv.reduce(torch.full((1, 70_000), 2.0, dtype=torch.float16), torch.ones(1, 70_000), "sum")


# -- chat files ---------------------------------------------------------------------------------
GOOD = {
    "messages": [{"role": "user", "content": "caf\u00e9"}, {"role": "assistant", "content": "x"}]
}


def _write(tmp_path, data: bytes):
    path = tmp_path / "c.jsonl"
    path.write_bytes(data)
    return path


def test_load_chats_keeps_line_separators_inside_strings(tmp_path):
    row = {"messages": [{"role": "user", "content": "a\u2028b\u2029c\u0085d"}, GOOD["messages"][1]]}
    text = json.dumps(row, ensure_ascii=False) + "\n" + json.dumps(GOOD, ensure_ascii=False)
    chats = chat.load_chats(_write(tmp_path, text.encode()))
    assert chats[0][0]["content"] == "a\u2028b\u2029c\u0085d" and len(chats) == 2


@pytest.mark.parametrize(
    "encode, message",
    [
        (lambda t: t.encode("latin-1"), ":1: not UTF-8 (byte 0xe9 at column 47)"),
        (lambda t: t.encode("utf-16"), ":1: not UTF-8 (byte 0xff at column 1)"),
        (lambda t: b"\n" + bytes(range(128, 256)), ":2: not UTF-8 (byte 0x80 at column 1)"),
    ],
)
def test_load_chats_names_the_line_and_byte_of_a_non_utf8_file(tmp_path, encode, message):
    with pytest.raises(ValueError) as info:
        chat.load_chats(_write(tmp_path, encode(json.dumps(GOOD, ensure_ascii=False))))
    assert message in str(info.value)


def test_load_chats_accepts_a_utf8_byte_order_mark(tmp_path):
    data = b"\xef\xbb\xbf" + json.dumps(GOOD, ensure_ascii=False).encode()
    assert chat.load_chats(_write(tmp_path, data))[0][0]["content"] == "caf\u00e9"


# -- runaway sizes ------------------------------------------------------------------------------
def test_audit_cost_does_not_grow_with_the_lengths():
    tracemalloc.start()
    start = time.process_time()
    t = audit_table([1_000_000_000, 1], per_device_batch_size=1, ga_steps=2)
    seconds, peak = time.process_time() - start, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert t["intended"] == pytest.approx([1e9 / (1e9 + 1), 1 / (1e9 + 1)])
    assert t["naive"] == pytest.approx([0.5, 0.5])
    assert seconds < 1.0 and peak < 10e6  # before: an [2, 1e9] mask, 8 GB


@pytest.mark.parametrize("name", list(lv.REDUCTIONS))
def test_audit_from_counts_equals_the_full_mask(name):
    lengths = [12, 40, 7, 300, 5, 9]
    t = audit_table(lengths, per_device_batch_size=1, ga_steps=3, world_size=2, reduction=name)
    mask = lv.mask_from_lengths(lengths)
    for col, normalize in (("global", "global"), ("naive", "naive"), ("sum", "sum")):
        W = lv.accumulation_weights(
            mask, ga_steps=3, world_size=2, dealing="trainer", reduction=name, normalize=normalize
        )
        assert t[col] == pytest.approx(W.sum(1).tolist(), rel=1e-5)  # float32 vs float64 sums
    assert t["intended"] == pytest.approx(lv.weights(mask, name).sum(1).tolist(), rel=1e-5)


def test_sample_ids_cost_grows_with_the_samples_not_the_largest_id():
    start = time.process_time()
    w = lv.weights(torch.ones(1, 2), "sample_mean", sample_ids=torch.tensor([[0, 10**9]]))
    assert w.tolist() == [[0.5, 0.5]] and time.process_time() - start < 1.0  # before: 26 s, 5 GB
    shares = lv.sample_weights(torch.ones(1, 3), "token_mean", sample_ids=[[5, 5, 10**9]])
    assert shares.tolist() == pytest.approx([2 / 3, 1 / 3])  # one entry per distinct id


# -- CLI ----------------------------------------------------------------------------------------
def test_audit_accepts_the_mean_alias(capsys):
    assert main(["audit", "--lengths", "3,5", "--ga-steps", "2", "--reduction", "mean"]) == 0
    assert "intended loss: token_mean" in capsys.readouterr().out


@pytest.mark.parametrize("out", ["DIR", "missing/../../../proc/nope/x.json"])
def test_experiment_checks_out_before_training(tmp_path, capsys, out):
    path = tmp_path if out == "DIR" else "/proc/nope/x.json"
    start = time.perf_counter()
    assert main(["experiment", "--steps", "1", "--seeds", "0", "--out", str(path)]) == 2
    assert time.perf_counter() - start < 5  # nothing trained (a run takes seconds)
    err = capsys.readouterr().err
    assert "--out" in err and ("folder" in err or "cannot be written" in err)


# -- run_ddp ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timeout": "5"}, "timeout must be a number of seconds"),
        ({"timeout": None}, "timeout must be a number of seconds"),
        ({"timeout": 0}, "timeout must be > 0 seconds"),
        ({"timeout": -1}, "timeout must be > 0 seconds"),
        ({"lengths": [3.5, 4]}, r"lengths\[0\] must be an integer"),
        ({"reduction": "avg"}, "unknown reduction"),
        ({"fail_rank": 5}, "fail_rank"),
        ({"seed": "0"}, "seed must be an integer"),
        ({"normalizations": "naive"}, "normalizations must be a non-empty list"),
    ],
)
def test_run_ddp_checks_every_argument_before_a_process_starts(kwargs, message):
    args = {"lengths": [3, 4], **kwargs}
    with pytest.raises(ValueError, match=message):
        lv.run_ddp(args.pop("lengths"), **args)
    assert multiprocessing.active_children() == []


def test_run_ddp_from_an_unguarded_script_names_the_main_guard(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import lossviz as lv\nlv.run_ddp([3, 4], timeout=60)\n")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr.splitlines()[-1]  # the parent's error
    assert "run_ddp was called while a worker process was starting" in done.stderr  # the ranks'


# -- numbers that must not pass -----------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        ((1, -5, 0.1), "prompt must hold token counts"),
        ((float("nan"), 5, 0.1), "completion must be a finite number"),
        ((1, 5, float("nan")), "prompt_weight must be a finite number"),
        ((1, float("inf"), 0.1), "prompt must hold token counts"),
        (("1", 5, 0.1), "completion must be a number"),
        ((1, 5, "0.1"), "prompt_weight must be a number"),
    ],
)
def test_completion_share_refuses_impossible_counts(args, message):
    with pytest.raises(ValueError, match=message):
        lv.completion_share(*args)


def test_masked_inf_or_nan_never_reaches_the_loss():
    for bad in (float("inf"), float("nan")):
        losses = torch.tensor([[1.0, bad]], requires_grad=True)
        out = lv.reduce(losses, torch.tensor([[1.0, 0.0]]))
        out.backward()
        assert float(out.detach()) == 1.0 and losses.grad.tolist() == [[1.0, 0.0]]
    logp = torch.tensor([[0.0, 100.0]], requires_grad=True)
    loss = rl.policy_loss(
        logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.tensor([[1.0, 0]]), "grpo"
    )
    loss.backward()
    assert float(loss.detach()) == -1.0 and logp.grad.tolist() == [[-1.0, 0.0]]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: lv.pack([[1.7, 2.2]], 4), r"sequences\[0\]\[0\] must be an integer"),
        (lambda: lv.pad([[1, 2], [3.0]]), r"sequences\[1\]\[0\] must be an integer"),
        (lambda: rl.response_mask([1.7]), r"lengths\[0\] must be an integer"),
        (lambda: lv.mask_from_lengths([True, 2]), r"lengths\[0\] must be an integer"),
        (lambda: rl.gradient_weights(rl.response_mask([2]), ["1"], "grpo"), r"advantages\[0\]"),
        (lambda: chat.loss_mask(chat.tokenize(GOOD), prompt_weight="0.1"), "prompt_weight"),
        (lambda: precision.per_token_losses("5"), "n must be an integer"),
        (lambda: precision.spacing("256", "bfloat16"), "value must be a number"),
        (lambda: precision.sequential_sum(["a"], "bfloat16"), r"x\[0\] must be a number"),
    ],
)
def test_wrong_types_get_an_error_that_names_the_argument(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.uint8])
def test_labels_of_every_integer_width_give_the_int64_loss(dtype):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 200, generator=gen)
    labels = torch.randint(0, 127, (2, 5), generator=gen)
    labels[0, 0] = 156 if dtype == torch.uint8 else 100  # uint8 156 compares equal to -100
    expected = lv.cross_entropy(logits, labels.long())
    assert torch.equal(lv.cross_entropy(logits, labels.to(dtype)), expected)


def test_lists_are_accepted_for_mask_and_sample_ids():
    logits, labels = torch.randn(2, 3, 8), torch.randint(0, 8, (2, 3))
    as_list = lv.cross_entropy(logits, labels, mask=[[1, 1, 0], [1, 0, 0]])
    as_tensor = lv.cross_entropy(logits, labels, mask=torch.tensor([[1.0, 1, 0], [1, 0, 0]]))
    assert torch.equal(as_list, as_tensor)
    assert lv.weights([[1, 1, 0]]).tolist() == [[0.5, 0.5, 0.0]]
    assert lv.weights(torch.ones(1, 2), "sample_mean", sample_ids=[[0, 1]]).tolist() == [[0.5, 0.5]]


# -- the one parser -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["²", "³,4", "٣", "4٣", "1.5", "12,,3", "", "abc"])
def test_the_parser_refuses_what_int_would_misread(text):
    with pytest.raises(ValueError, match="length"):
        parse_list(text, "length", low=1)


def test_fill_step_fills_or_cuts_a_step_and_says_so():
    from lossviz.step_shape import fill_step

    assert fill_step([3, 7], 5) == (
        [3, 7, 3, 7, 3],
        "the 2 lengths repeated to fill the step's 5 samples",
    )
    assert fill_step([3, 7, 20], 2) == ([3, 7], "the 3 lengths cut to the step's 2 samples")
    assert fill_step([4], 1) == ([4], "")
    with pytest.raises(ValueError, match="at least one"):
        fill_step([], 3)
    with pytest.raises(ValueError, match="num_samples"):
        fill_step([1], 0)


def test_an_integer_too_large_for_a_float_is_named_by_its_size():
    from lossviz.checks import integer

    with pytest.raises(ValueError, match="between 1 and 24, got an integer of 401 digits"):
        integer("length", 10**400, low=1, high=24)
    with pytest.raises(ValueError, match="got a negative integer of about 3010[23] digits"):
        integer("length", -(10**30103), low=1)

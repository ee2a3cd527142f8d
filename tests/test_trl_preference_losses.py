"""lossviz's preference, DFT and SimPO losses against TRL 1.16's own code (tiny model, nothing downloaded).

DPO and IPO: a real ``DPOTrainer`` on the one-layer Llama and the word-level tokenizer of
:mod:`lossviz.trainers.tiny`; its ``compute_loss`` on one batch is compared with
:func:`lossviz.preference.pair_loss` on log-probs computed independently from the model's logits, and
the parameter gradient of TRL's loss with the gradient of ``sum W * l`` (``W`` from
:func:`preference_weights`, detached). SimPO lives in TRL's experimental ``CPOTrainer``: its
``cpo_loss`` and ``get_batch_logps`` are called unbound. DFT: a real ``SFTTrainer(loss_type="dft")``.
"""

import types

import pytest
import torch

from lossviz import preference, token_gradients
from lossviz.cross_entropy import shift_labels, token_losses

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from lossviz.trainers.tiny import tiny_llama as _tiny_llama  # noqa: E402
from lossviz.trainers.tiny import tiny_tokenizer  # noqa: E402


def tiny_llama(seed):
    tok = tiny_tokenizer()
    return _tiny_llama(
        len(tok),
        seed,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        initializer_range=0.5,  # policy and reference far apart: the sigmoid is not at 1/2
    )


PAIRS = {  # chosen and rejected of different lengths, both ways round
    "prompt": ["w3 w4", "w5"],
    "chosen": [" w6 w7 w8", " w9"],
    "rejected": [" w10", " w11 w12 w13 w14"],
}


def per_token_logps(model, batch):
    """``(logp [2B, T], mask [2B, T])`` of the completion tokens, from plain logits (no TRL code)."""
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logp = -token_losses(logits, labels, shift=True)
    mask = (shift_labels(labels) != -100).to(logp.dtype)
    return logp, mask


@pytest.fixture(scope="module")
def dpo_runs(tmp_path_factory):
    runs = {}
    for loss_type in ("sigmoid", "ipo"):
        args = trl.DPOConfig(
            output_dir=str(tmp_path_factory.mktemp(loss_type)),
            per_device_train_batch_size=2,
            report_to=[],
            use_cpu=True,
            beta=0.5,
            loss_type=[loss_type],
            max_length=None,
            save_strategy="no",
        )
        trainer = trl.DPOTrainer(
            model=tiny_llama(0),
            ref_model=tiny_llama(1),
            args=args,
            train_dataset=datasets.Dataset.from_dict(PAIRS),
            processing_class=tiny_tokenizer(),
        )
        batch = next(iter(trainer.get_train_dataloader()))
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        trl_grad = [p.grad.clone() for p in trainer.model.parameters()]
        runs[loss_type] = (trainer, batch, loss.detach(), trl_grad)
    return runs


@pytest.mark.parametrize("loss_type,ours", [("sigmoid", "dpo"), ("ipo", "ipo")])
def test_dpo_trainer_loss_and_gradient_equal_lossviz(dpo_runs, loss_type, ours):
    trainer, batch, trl_loss, trl_grad = dpo_runs[loss_type]
    model, ref = trainer.model, trainer.ref_model
    logp, mask = per_token_logps(model, batch)
    with torch.no_grad():
        ref_logp, _ = per_token_logps(ref, batch)
    half = logp.shape[0] // 2  # TRL's batch is [chosen..., rejected...]
    assert mask[:half].sum(1).tolist() != mask[half:].sum(1).tolist()  # lengths differ in each pair
    parts = dict(ref_chosen=ref_logp[:half], ref_rejected=ref_logp[half:], beta=trainer.beta)
    ours_loss = preference.pair_loss(
        ours, logp[:half], mask[:half], logp[half:], mask[half:], **parts
    )
    # float32 forward passes of 4 x 6 tokens: the two sums differ by rounding only (seen ~1e-8)
    assert abs(float(ours_loss.detach()) - float(trl_loss)) < 1e-5
    assert abs(float(trl_loss) - 0.6931) > 0.05  # not the loss of equal log-ratios, log 2
    w_c, w_r = preference.preference_weights(
        ours, logp[:half].detach(), mask[:half], logp[half:].detach(), mask[half:], **parts
    )
    model.zero_grad()
    (torch.cat([w_c, w_r]) * -logp).sum().backward()  # sum W * l, l = -logp
    for p, g in zip(model.parameters(), trl_grad, strict=True):
        # float32 gradients of a one-layer model; entries ~1e-2, rounding ~1e-8
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)


def test_simpo_equals_trl_cpo_trainer_code():
    from trl.experimental.cpo import CPOTrainer

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 11, (4, 7), generator=gen)
    for row, n in enumerate((3, 6, 2, 4)):  # completion tokens of each response
        labels[row, : 7 - n] = -100
    beta, gamma = 2.0, 0.8
    trainer = types.SimpleNamespace(  # the attributes cpo_loss reads from its trainer
        alpha=0.0,
        loss_type="simpo",
        simpo_gamma=gamma,
        beta=beta,
        label_smoothing=0.0,
        accelerator=types.SimpleNamespace(device=torch.device("cpu")),
    )
    avg = CPOTrainer.get_batch_logps(logits, labels, average_log_prob=True)
    trl_loss = CPOTrainer.cpo_loss(trainer, avg[:2], avg[2:])[0].mean()
    trl_grad = torch.autograd.grad(trl_loss, logits)[0]

    logp = -token_losses(logits, labels, shift=True)
    mask = (shift_labels(labels) != -100).to(logp.dtype)
    ours = preference.pair_loss(
        "simpo", logp[:2], mask[:2], logp[2:], mask[2:], beta=beta, gamma=gamma
    )
    assert ours.item() == pytest.approx(trl_loss.item(), abs=1e-12)  # float64
    w_c, w_r = preference.preference_weights(
        "simpo", logp[:2].detach(), mask[:2], logp[2:].detach(), mask[2:], beta=beta, gamma=gamma
    )
    our_grad = torch.autograd.grad((torch.cat([w_c, w_r]) * -logp).sum(), logits)[0]
    torch.testing.assert_close(our_grad, trl_grad, rtol=1e-10, atol=1e-14)


def test_dft_equals_sft_trainer(tmp_path):
    args = trl.SFTConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=3,
        report_to=[],
        use_cpu=True,
        loss_type="dft",
        save_strategy="no",
    )
    text = {"text": ["w3 w4 w5 w6", "w7 w8", "w9 w10 w11 w12 w13 w14"]}
    trainer = trl.SFTTrainer(
        model=tiny_llama(2),
        args=args,
        train_dataset=datasets.Dataset.from_dict(text),
        processing_class=tiny_tokenizer(),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.zero_grad()
    trl_loss = trainer.compute_loss(model, batch)
    trl_loss.backward()
    trl_grad = [p.grad.clone() for p in model.parameters()]

    labels = batch["labels"]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shifted = shift_labels(labels)
    w = token_gradients.dft_weights(logits, shifted)
    ours = (w * token_losses(logits, shifted)).sum()
    # float32, 3 x 7 tokens: rounding only (seen ~1e-8)
    assert abs(float(ours.detach()) - trl_loss.item()) < 1e-5
    dft = token_gradients.dft_losses(logits, shifted).sum() / (shifted != -100).sum()
    assert abs(float(ours.detach()) - float(dft.detach())) < 1e-6
    model.zero_grad()
    ours.backward()
    for p, g in zip(model.parameters(), trl_grad, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)  # float32 gradients, see above

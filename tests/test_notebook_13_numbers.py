"""Every number notebook 13 states, recomputed through the package (the notebook's own digits)."""

import math

import pytest
import torch

import lossviz as lv
from lossviz import distillation, preference
from lossviz import token_gradients as tg


def uniform_pair(n_chosen, n_rejected, logp_c=-1.0, logp_r=-1.0):
    cm = lv.mask_from_lengths([n_chosen]).double()
    rm = lv.mask_from_lengths([n_rejected]).double()
    return dict(
        chosen=logp_c * cm,
        chosen_mask=cm,
        rejected=logp_r * rm,
        rejected_mask=rm,
        ref_chosen=-cm,
        ref_rejected=-rm,
    )


def test_section_1_first_step_and_saturation():
    pair = uniform_pair(2, 4)
    printed = {  # per chosen token, chosen total, per rejected token, rejected total
        "dpo": ("+0.0500", "+0.1000", "-0.0500", "-0.2000"),
        "simpo": ("+0.7311", "+1.4621", "-0.3655", "-1.4621"),
        "ipo": ("+5.0000", "+10.0000", "-2.5000", "-10.0000"),
    }
    settings = {"dpo": dict(beta=0.1), "simpo": dict(beta=2.0, gamma=1.0), "ipo": dict(beta=0.1)}
    for loss, kw in settings.items():
        w_c, w_r = preference.preference_weights(loss, **pair, **kw)
        values = (w_c[0, 0], w_c.sum(), w_r[0, 0], w_r.sum())
        assert tuple(f"{float(v):+.4f}" for v in values) == printed[loss], loss
    assert f"{2 / (1 + math.exp(-1)):.4f}" == "1.4621"
    sat = []
    for n in (10, 100):
        moved = uniform_pair(n, n, -0.9, -1.1)
        dpo = float(preference.preference_weights("dpo", **moved, beta=0.1)[0][0, 0]) / 0.1
        simpo = float(preference.preference_weights("simpo", **moved, beta=2.0, gamma=1.0)[0][0, 0])
        sat.append((f"{dpo:.4f}", f"{simpo * n:.4f}"))
    assert sat == [("0.4502", "1.2913"), ("0.1192", "1.2913")]
    assert (
        f"{1 / (1 + math.exp(0.2)):.4f}" == "0.4502" and f"{1 / (1 + math.exp(2)):.4f}" == "0.1192"
    )


def test_section_1_shared_scale_of_the_two_heatmaps():
    cm2, rm2 = lv.mask_from_lengths([4, 40]).double(), lv.mask_from_lengths([40, 4]).double()
    two = dict(chosen=-cm2, chosen_mask=cm2, rejected=-rm2, rejected_mask=rm2)
    settings = {"dpo": dict(beta=0.1), "simpo": dict(beta=2.0, gamma=1.0)}
    tops, totals = {}, {}
    for loss, kw in settings.items():
        w_c, w_r = preference.preference_weights(
            loss, **two, ref_chosen=-cm2, ref_rejected=-rm2, **kw
        )
        top = float(torch.cat([w_c.flatten(), w_r.flatten()]).abs().max())
        tops[loss] = f"{top:.4f}"
        totals[loss] = [round(float(v), 6) for v in (w_c / top).sum(dim=1)]
    assert tops == {"dpo": "0.0250", "simpo": "0.1828"}
    assert totals == {"dpo": [4.0, 40.0], "simpo": [4.0, 4.0]}  # the rows' Σ on the shared scale


def test_section_2_kl_factors():
    student = torch.zeros(2, 3, 2, dtype=torch.float64)
    teacher = torch.tensor([math.log(3.0), 0.0], dtype=torch.float64).expand(2, 3, 2)
    got = {
        r: f"{float(distillation.kl_loss(student, teacher, r)):.4f}"
        for r in distillation.KL_REDUCTIONS
    }
    assert got == {
        "token_mean": "0.1308",
        "batchmean": "0.3924",
        "batchmean_flat": "0.1308",
        "mean": "0.0654",
        "sum": "0.7849",
    }


def test_section_3_probe_read_outs():
    logits, label = torch.tensor([[1.0, 2.0, 0.0, 0.0]], dtype=torch.float64), torch.tensor([0])
    p_y = float(torch.softmax(logits, -1)[0, 0])
    assert f"{p_y:.4f}" == "0.2245" == f"{math.e / (math.e + math.e**2 + 2):.4f}"
    ce = tg.ce_logit_grad(logits, label)
    grads = {
        "CE": (ce, "1.0000", "0.0%"),
        "DFT": (p_y * ce, "0.2245", "0.0%"),
        "smoothing": (tg.label_smoothing_logit_grad(logits, label, 0.1), "0.9215", "4.1%"),
        "z-loss": (ce + tg.z_loss_logit_grad(logits, 1e-2), "1.0107", "3.1%"),
    }
    for name, (g, w_text, rest_text) in grads.items():
        w, rest = lv.recover_weights(logits, label, g)  # the probe of notebook 11
        assert (f"{float(w):.4f}", f"{float(rest):.1%}") == (w_text, rest_text), name


def test_section_4_dft():
    logits = torch.tensor(
        [[math.log(9.0), 0.0], [0.0, 0.0], [-math.log(9.0), 0.0]], dtype=torch.float64
    )
    labels = torch.tensor([0, 0, 0])
    w = tg.dft_weights(logits, labels)
    push = -(w[:, None] * tg.ce_logit_grad(logits, labels))[:, 0]
    ce_push = -(tg.ce_logit_grad(logits, labels) / 3)[:, 0]
    assert [round(v, 4) for v in push.tolist()] == [0.03, 0.0833, 0.03]
    assert [round(v, 4) for v in ce_push.tolist()] == [0.0333, 0.1667, 0.3]
    dft = float(tg.dft_losses(logits, labels).mean())
    assert f"{dft:.4f}" == "0.2239"
    assert dft == pytest.approx(
        (0.9 * -math.log(0.9) + 0.5 * -math.log(0.5) + 0.1 * -math.log(0.1)) / 3
    )

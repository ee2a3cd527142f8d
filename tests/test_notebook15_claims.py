"""The numbers and links of notebook 15 (what should I use?), recomputed through the package."""

import json
import re
from pathlib import Path

import pytest
import torch

import lossviz as lv

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NB15 = NOTEBOOKS / "15_what_should_i_use.ipynb"
# Notebooks the learning path adds beside this one (the start notebook, 02 split in two, the RL primer
# before 09): where none carries the prefix yet, the link cannot be checked; where one does, the link
# must name it.
NEW_PREFIXES = ("00_", "02b_", "08b_")


def _settings() -> dict[str, torch.Tensor]:
    lengths = [3, 7, 20, 5]
    m = lv.mask_from_lengths(lengths).double()
    packed = lv.pack([[1] * (n + 1) for n in lengths], row_length=40)
    pm, ids = packed.loss_mask(), packed.loss_sample_ids()
    Wp = lv.weights(pm, "token_mean", sample_ids=ids)
    Wp = torch.stack([torch.where(ids[0] == b, Wp[0], 0.0) for b in range(4)])
    halves = [[[0, 1]], [[2, 3]]]
    return {
        "sft": lv.weights(m, "token_mean"),
        "ga": lv.accumulation_weights(m, ga_steps=2, normalize="global"),
        "ga_naive": lv.accumulation_weights(m, ga_steps=2, normalize="naive"),
        "ranks": lv.plan_weights(m, halves, normalize="global"),
        "ranks_local": lv.plan_weights(m, halves, normalize="local"),
        "packed": Wp,
        "dapo": lv.weights(m, "token_mean"),
        "grpo": lv.weights(m, "sample_mean"),
        "dr_grpo": lv.weights(m, "constant_norm", max_length=32),
    }


def _inv(W: torch.Tensor) -> list[int]:
    return [round(1 / float(row[row > 0][0])) for row in W]


def test_every_recommended_setting_is_the_global_token_mean():
    s = _settings()
    for name in ("sft", "ga", "ranks", "packed", "dapo"):
        W = s[name]
        expected = torch.tensor([3, 7, 20, 5], dtype=torch.float64) / 35
        assert torch.allclose(W.sum(dim=1).double(), expected, atol=1e-6), name
        assert _inv(W) == [35] * 4 and float(W.sum()) == pytest.approx(1.0)
        assert " ".join(f"{float(x):.3f}" for x in W.sum(dim=1)) == "0.086 0.200 0.571 0.143"
    # packing: the trained tokens sit exactly where padding would put them, piece by piece
    assert int((s["packed"] > 0).sum()) == 35


def test_what_the_avoided_settings_do():
    s = _settings()
    for name in ("ga_naive", "ranks_local"):
        W = s[name]
        assert _inv(W) == [20, 20, 50, 50]
        assert " ".join(f"{float(x):.3f}" for x in W.sum(dim=1)) == "0.150 0.350 0.400 0.100"
        assert float(W.sum()) == pytest.approx(1.0)
    assert 50 / 20 == 2.5  # "2.5 times more per token"


def test_the_three_rl_reductions():
    s = _settings()
    assert _inv(s["grpo"]) == [12, 28, 80, 20]
    assert torch.allclose(s["grpo"].sum(dim=1), torch.full((4,), 0.25, dtype=torch.float64))
    assert _inv(s["dr_grpo"]) == [128] * 4
    total = float(s["dr_grpo"].sum())
    assert total == pytest.approx(35 / 128) and f"{total:.3f}" == "0.273"
    shares = " ".join(f"{float(x):.3f}" for x in s["dr_grpo"].sum(dim=1))
    assert shares == "0.023 0.055 0.156 0.039"


def test_the_stored_output_is_what_the_package_computes():
    nb = json.loads(NB15.read_text())
    out = "".join(
        "".join(o.get("text", ""))
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
    )
    assert "GA, avoid: naive         shares 0.150 0.350 0.400 0.100  total 1.000" in out
    assert "RL Dr. GRPO, C = 32      shares 0.023 0.055 0.156 0.039  total 0.273" in out
    assert out.count("1/W [35, 35, 35, 35]") == 6


def test_every_notebook_link_resolves():
    nb = json.loads(NB15.read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    links = set(re.findall(r"\]\(([0-9][0-9a-z_]*\.ipynb)\)", text))
    assert len(links) >= 14
    existing = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    for link in links:
        if link in existing:
            continue
        prefix = next((p for p in NEW_PREFIXES if link.startswith(p)), None)
        assert prefix is not None, f"notebook 15 links {link}, which does not exist"
        named = [n for n in existing if n.startswith(prefix)]
        assert not named, f"notebook 15 links {link}, but the {prefix}* notebook is {named}"

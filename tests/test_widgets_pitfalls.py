"""The pitfall explorer (lossviz's models of each Trainer setup), driven without a kernel."""

import pytest

pytest.importorskip("transformers")  # the trainers extra; `make test` installs it

from lossviz.widgets.base import EdgeCase  # noqa: E402
from lossviz.widgets.pitfalls import SETUPS, pitfall_explorer, render_pitfall  # noqa: E402


def test_every_setup_renders_and_totals_what_its_model_says():
    totals = {
        s: render_pitfall(setup=s).data["total"] for s in SETUPS
    }  # 3, 7, 20, 5; GA 2; 2 ranks
    assert totals["transformers 5.24 defaults"] == pytest.approx(1.0)
    assert totals["average_tokens_across_devices=False"] == pytest.approx(1.0)
    assert totals["compute_loss returns model(**inputs).loss"] == pytest.approx(2.0)  # = GA
    assert totals["model forward without **kwargs"] == pytest.approx(1.0)
    assert totals["transformers 4.48 to 5.9 (+1 token per row)"] == pytest.approx(35 / 39)
    v = render_pitfall(setup="transformers 5.24 defaults")
    assert v.data["W"] == v.data["global"] and "0.086, 0.200, 0.571, 0.143" in v.text


def test_settings_without_a_picture_explain_themselves():
    short = render_pitfall(lengths="3, 7")  # batch 1 x GA 2 x 2 ranks: 4 samples per step
    assert "the 2 lengths repeated to fill the step's 4 samples: 3, 7, 3, 7" in short.text
    with pytest.raises(EdgeCase, match="choose a setup"):
        render_pitfall(setup="deepspeed")
    with pytest.raises(EdgeCase, match="between 1 and 400"):
        render_pitfall(lengths="0, 3, 4, 5")


def test_the_explorer_re_renders_and_never_shows_a_traceback():
    ex = pitfall_explorer()
    assert ex.out.outputs[0]["output_type"] == "display_data"
    ex.controls["setup"].value = "compute_loss returns model(**inputs).loss"
    ex.controls["ga"].value = 4  # 3, 7, 20, 5 is 4 samples; GA 4 x 2 ranks takes 8: repeated
    assert "repeated to fill the step's 8 samples" in ex.last_view.text
    assert ex.last_view.data["total"] == pytest.approx(4.0)  # GA 4 unscaled micro-batch means
    ex.controls["lengths"].value = "3, 7, 20, 5, 1, 2, 3, 4"
    assert ex.last_view.data["total"] == pytest.approx(4.0) and "repeated" not in ex.last_view.text


def test_measure_eval_refuses_bad_input():
    from lossviz.trainers.hf_eval import measure_eval

    with pytest.raises(ValueError, match="batch_size"):
        measure_eval([2, 3], batch_size=0)
    with pytest.raises(ValueError, match="logit_scale"):
        measure_eval([2, 3], batch_size=1, logit_scale=float("nan"))

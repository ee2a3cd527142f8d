"""The probe explorer (one real Trainer step per setting), driven without a kernel."""

import pytest

pytest.importorskip("transformers")  # the trainers extra; `make test` installs it

from lossviz.widgets.base import EdgeCase  # noqa: E402
from lossviz.widgets.probe import probe_explorer, render_probe  # noqa: E402


def test_settings_without_a_picture_explain_themselves():
    with pytest.raises(EdgeCase, match="takes 4 samples"):
        render_probe(lengths="3,7", batch=2, ga=2)
    with pytest.raises(EdgeCase, match="positive integers"):
        render_probe(lengths="3,x")
    with pytest.raises(EdgeCase, match="between 1 and 400"):
        render_probe(lengths="0,3", batch=1, ga=2)


def test_the_explorer_measures_the_real_trainer_and_re_renders():
    ex = probe_explorer()  # batch 1, GA 4 on 3, 7, 20, 5: the global token mean
    r = ex.last_view.data["result"]
    assert "global" in r["matches"] and "matches lossviz's `global` model" in ex.last_view.text
    ex.controls["case"].value = "naive"  # now each micro-batch (one sample) gets 1/4
    r = ex.last_view.data["result"]
    assert r["diff"]["naive"]["max_rel_diff"] < 1e-6  # float32 recovery, ~6e-8
    assert "0.250, 0.250, 0.250, 0.250" in ex.last_view.text
    assert ex.out.outputs[0]["output_type"] == "display_data"
    ex.controls["ga"].value = 3  # 4 lengths for 3 samples: explained, not a traceback
    assert "Nothing to draw here" in ex.last_view.text

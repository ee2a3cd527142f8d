"""The cached version table: released transformers versions measured by the probe."""

import pytest

from lossviz.commands import main
from lossviz.trainers import versions as vt


def test_the_cached_table_measures_at_least_five_versions():
    table = vt.load_table()
    assert table["setups"] == vt.SETUPS and table["pinned"] == vt.PINNED
    rows = {r["version"]: r for r in table["rows"]}
    assert set(rows) <= set(vt.VERSIONS) and vt.PINNED in rows
    measured = [r for r in rows.values() if r["status"] == "measured"]
    assert len(measured) >= 5
    for r in rows.values():
        if r["status"] != "measured":
            assert r["reason"], f"{r['version']}: a row that was not measured says why"
            continue
        for key in ("ga", "compute_loss", "ranks"):
            assert r[key]["max_residual"] < 1e-5  # every version's loss is plain weighted CE
            assert r[key]["model"] in r[key]["matches"]
            # shares of one step sum to 1; the compute_loss fallback's to GA = 2; an over-count
            # (one extra token per row in the denominator) leaves them short of 1
            total = sum(r[key]["shares"])
            if r[key]["model"].endswith("_overcount"):
                assert 0.8 < total < 1 - 1e-3
            else:
                assert total == pytest.approx(2.0 if r[key]["model"] == "unscaled" else 1.0)


def test_install_refuses_a_version_without_pins(tmp_path, monkeypatch):
    monkeypatch.setenv("LOSSVIZ_CACHE", str(tmp_path))
    assert vt.cache_dir() == tmp_path / "transformers"
    assert vt.install(vt.PINNED) is None  # the environment's own
    with pytest.raises(ValueError, match="version must be one of"):
        vt.install("3.0.0")


def test_the_command_names_an_unknown_version(capsys):
    assert main(["version-table", "--versions", "4.45.2,9.9.9"]) == 2
    assert "9.9.9" in capsys.readouterr().err


def test_a_version_that_cannot_be_installed_gets_a_row_that_says_why(monkeypatch):
    def fail(version, cache=None):
        raise vt.InstallError("pip install transformers==4.45.2 failed: no matching distribution")

    monkeypatch.setattr(vt, "install", fail)
    table = vt.build_table(["4.45.2"], progress=False)
    assert table["rows"] == [
        {
            "version": "4.45.2",
            "status": "not installed",
            "reason": "pip install transformers==4.45.2 failed: no matching distribution",
        }
    ]

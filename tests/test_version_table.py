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


def _table(*rows, torch="2.13.0+cpu"):
    return {"setups": vt.SETUPS, "pinned": vt.PINNED, "torch": torch, "rows": list(rows)}


def test_merging_replaces_a_row_and_keeps_the_order_of_versions():
    old = vt.load_table()
    again = dict(old["rows"][0], seconds=-1.0)  # 4.45.2 measured again
    extra = {"version": "5.25.0", "status": "failed", "reason": "a reason"}
    new = _table(extra, again, torch=old["torch"])
    merged = vt.merge_tables(old, new)
    versions = [r["version"] for r in merged["rows"]]
    assert versions == [v for v in vt.VERSIONS if v in versions]  # VERSIONS order
    assert set(versions) == {r["version"] for r in old["rows"]} | {"5.25.0"}
    by = {r["version"]: r for r in merged["rows"]}
    assert by["4.45.2"]["seconds"] == -1.0 and by["5.25.0"] == extra
    assert vt.load_table() == old  # nothing written
    with pytest.raises(ValueError, match="torch"):
        vt.merge_tables(old, _table(extra, torch="0.0"))


def test_the_command_adds_rows_to_the_table_at_out(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    out = tmp_path / "table.json"
    shutil.copy(vt.DATA, out)
    cached = vt.load_table()
    row = {"version": "5.25.0", "status": "failed", "reason": "measured elsewhere"}
    # the measurement itself is tested above and in test_trainer_probe; here only the merge
    monkeypatch.setattr(vt, "build_table", lambda versions: _table(row, torch=cached["torch"]))
    assert main(["version-table", "--versions", "5.25.0", "--out", str(out), "--add"]) == 0
    assert "5.25.0  failed: measured elsewhere" in capsys.readouterr().out
    written = json.loads(out.read_text())
    # 5.25.0 is the last of VERSIONS: every cached row stays, its own (if any) replaced
    assert written["rows"] == [r for r in cached["rows"] if r["version"] != "5.25.0"] + [row]
    # without --add the file holds the measured versions only
    assert main(["version-table", "--versions", "5.25.0", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rows"] == [row]
    # --add into a missing table says so
    assert (
        main(["version-table", "--versions", "5.25.0", "--out", str(tmp_path / "no.json"), "--add"])
        == 2
    )
    assert "--add needs the table" in capsys.readouterr().err

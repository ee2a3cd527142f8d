"""The project's own files: the two-command set-up, the pins, and environment.yml in step."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    return {_name(r) for r in reqs} - {"lossviz"}  # the dev set names the trainers extra


def environment_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep["pip"]}
        elif _name(dep) not in {"python", "pip"}:
            names.add(_name(dep))
    return names


def test_environment_yml_names_the_same_packages_as_pyproject():
    assert environment_packages() == pyproject_packages()
    assert yaml.safe_load((ROOT / "environment.yml").read_text())["channels"] == ["conda-forge"]


def test_constraints_pin_every_direct_dependency_and_torch_2_13():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version.strip()
    assert pins["torch"] == "2.13.0"
    assert pyproject_packages() <= set(pins)


def test_readme_and_ci_use_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_readme_table_lists_every_reduction():
    import lossviz as lv

    readme = (ROOT / "README.md").read_text()
    for name in lv.REDUCTIONS:
        assert f"| `{name}`" in readme, name


def test_readme_code_runs_and_states_true_numbers():
    import torch

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 3
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)  # noqa: S102 - our own README
    lv = scope["lv"]
    torch.testing.assert_close(
        lv.sample_weights(scope["mask"], "token_mean"), torch.tensor([3, 7, 20]) / 30
    )
    for block in blocks[1:]:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102
    tokens = scope["tokens"]
    assert len(tokens) == 29 and lv.chat.loss_mask(tokens, "last_assistant").sum().item() == 4
    assert round(float(lv.completion_share(1, 100, 0.1)), 4) == 0.0909
    table = scope["table"]
    assert (table.overflow["float16"], table.stall["bfloat16"]) == (10872, 849)
    assert (float(scope["w_c"].sum()), float(scope["w_r"].sum())) == (
        pytest.approx(0.2),
        pytest.approx(-2.0),
    )
    assert table.stall["float16"] == 6732  # the README says both stalls as token counts
    readme = (ROOT / "README.md").read_text()
    assert "after 849 tokens" in readme and "after 6,732\ntokens" in readme


def test_the_core_imports_without_the_trainers_extra():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('transformers', 'accelerate', 'trl', 'datasets'):\n"
        "    sys.modules[name] = None  # import of any of them now fails\n"
        "import lossviz, lossviz.chat, lossviz.rl, lossviz.precision\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_one_meaning_per_name():
    """REDUCTIONS is the registry of lossviz.reductions and nothing else; the explorers' layouts and
    their longest length have one name each (BATCH_LAYOUTS, TURN_LAYOUTS, MAX_LENGTH)."""
    import ast

    defined: dict[str, list[str]] = {}
    for path in sorted((ROOT / "lossviz").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            targets += [node.target] if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Name):
                    defined.setdefault(t.id, []).append(path.relative_to(ROOT).as_posix())
    assert defined["REDUCTIONS"] == ["lossviz/reductions.py"]
    assert defined["BATCH_LAYOUTS"] == ["lossviz/batching.py"]
    assert defined["TURN_LAYOUTS"] == ["lossviz/widgets/chat.py"]
    assert not {"LAYOUTS", "MAX_LEN"} & set(defined), "use BATCH_LAYOUTS / TURN_LAYOUTS, MAX_LENGTH"
    # max_len meant a model's positions and a vocabulary's longest piece: now context_length and
    # longest_piece; the module lossviz.prompt_loss is not called prompt_weight (a float elsewhere)
    source = {p: p.read_text(encoding="utf-8") for p in (ROOT / "lossviz").rglob("*.py")}
    assert not [p.name for p, text in source.items() if re.search(r"\bmax_len\b", text)]
    assert not (ROOT / "lossviz" / "prompt_weight.py").exists()

"""Run the unit tests and every notebook again under other numeric configurations of this CPU.

Float rounding depends on the vector kernels torch picks (``ATEN_CPU_CAPABILITY``) and on the number
of threads (the order of a parallel sum). A stored output or a test that holds only on the CPU it was
made on fails here, on any machine, instead of on a user's. ``make test-portable`` runs this; CI too.

Each configuration runs `pytest` on tests/ and strict nbval on notebooks/ with its own environment;
the configurations run side by side (one of them single-threaded), and a capability the CPU lacks is
skipped with a line that says so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("default", 1), ("avx2", 4)]  # (ATEN_CPU_CAPABILITY, OMP_NUM_THREADS)


def capability_in_use(env: dict[str, str]) -> str:
    """What torch runs with under ``env`` (it falls back to its best if the CPU lacks the asked one)."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True
    )
    return done.stdout.strip().lower()


def commands() -> list[list[str]]:
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return [
        [*pytest, "-m", "not browser", "--ignore=notebooks", "tests"],
        [*pytest, "--nbval", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "notebooks"],
    ]


def main() -> int:
    start = time.perf_counter()
    runs = []
    for cap, threads in CONFIGS:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": str(threads)}
        env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(ROOT / ".hypothesis" / f"portable-{cap}")
        name = f"ATEN_CPU_CAPABILITY={cap} OMP_NUM_THREADS={threads}"
        got = capability_in_use(env)
        if got != cap:
            print(f"skipped {name}: this CPU cannot run it (torch runs {got or 'nothing'})")
            continue
        print(f"running {name}: unit tests, then every notebook under strict nbval", flush=True)
        log = ROOT / ".pytest_cache" / f"portable-{cap}-{threads}.log"
        log.parent.mkdir(exist_ok=True)
        script = " && ".join(subprocess.list2cmdline(c) for c in commands())
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", script],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one kill ends pytest and kernels
            )
        runs.append((name, proc, log))
    failed = 0
    try:
        for name, proc, log in runs:
            rc = proc.wait()
            tail = [ln for ln in log.read_text().splitlines() if ln.strip()][-12:]
            print(f"\n== {name}: {'passed' if rc == 0 else f'FAILED (exit {rc})'}")
            lines = tail if rc else [ln for ln in tail if " passed" in ln or " failed" in ln]
            print("\n".join(lines))
            failed += rc != 0
    finally:
        for _, proc, _ in runs:  # on Ctrl-C or an error above: leave no run behind
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    ran = len(runs)
    print(f"\n{ran} configuration(s) run, {failed} failed, in {time.perf_counter() - start:.0f} s")
    return 1 if failed or not ran else 0


if __name__ == "__main__":
    sys.exit(main())

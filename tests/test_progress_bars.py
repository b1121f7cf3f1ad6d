"""Progress bars from inside tasks and actors (``shoal.experimental.tqdm_ray``,
``ray.experimental.tqdm_ray`` under ``import shoal as ray``) show in the
driver's terminal: a real driver process runs a real cluster, its output is
captured through a pipe (each bar's final line, no cursor movement, the
tasks' own prints intact) and through a pseudo-terminal (bars redrawn in
place, prints scrolling above them)."""

from __future__ import annotations

import fcntl
import glob
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from shoal.experimental import progress_wire
from tests.utils import REPO_ROOT, SESSION_TAG_ENV, subprocess_env

DRIVER = r'''
import time
import shoal as ray

context = ray.init(num_cpus=2, include_dashboard=False)
print("SESSION", context["session_dir"], flush=True)
tqdm = ray.experimental.tqdm_ray.tqdm


@ray.remote
def count(n, name):
    for i in tqdm(range(n), desc=name):
        time.sleep(0.004)
        if i % 10 == 0:
            print(f"line {name} {i}")
    return n


@ray.remote
class Mover:
    def run(self, n):
        with tqdm(total=n, desc="mover", unit="step") as bar:
            bar.set_description("mover-moving")
            for _ in range(n):
                time.sleep(0.004)
                bar.update(1)
        return n


mover = Mover.remote()
print("RESULT", ray.get([count.remote(60, "alpha"), count.remote(45, "beta"),
                         mover.run.remote(50)], timeout=60), flush=True)
ray.shutdown()  # waits (briefly) for the bars' final states
'''
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PRINTED = re.compile(r"\(pid=\d+\) line (alpha|beta) (\d+)")
FINAL = {"alpha": "60/60", "beta": "45/45", "mover-moving": "50/50"}
EXPECTED_PRINTS = {("alpha", str(i)) for i in range(0, 60, 10)} | {
    ("beta", str(i)) for i in range(0, 45, 10)}


def _env() -> dict:
    return subprocess_env(os.environ[SESSION_TAG_ENV])


@pytest.mark.timeout(120)
def test_bars_from_tasks_end_as_one_line_each_in_a_piped_driver(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=100, cwd=str(REPO_ROOT), env=_env(),
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    out, err = done.stdout, done.stderr
    assert "RESULT [60, 45, 50]" in out
    assert "__shoal_progress__" not in out + err  # drawn, never printed raw
    assert "\r" not in err and "\x1b[" not in err  # no redraws into a pipe
    for desc, count in FINAL.items():
        lines = [line for line in err.splitlines() if line.startswith(f"{desc}: ")]
        assert len(lines) == 1 and "100%" in lines[0] and count in lines[0], (desc, err)
    assert "step" in next(line for line in err.splitlines() if line.startswith("mover-moving"))
    printed = [line for line in out.splitlines() if not line.startswith(("RESULT", "SESSION"))]
    assert all(PRINTED.fullmatch(line) for line in printed), printed  # whole lines
    assert {PRINTED.fullmatch(line).groups() for line in printed} == EXPECTED_PRINTS
    # the workers' log files have their prints, not the bars' state lines
    session = next(line.split(" ", 1)[1] for line in out.splitlines()
                   if line.startswith("SESSION"))
    logged = "".join(open(path).read() for path in glob.glob(f"{session}/logs/worker-*.out"))
    assert "line alpha 50" in logged and "line beta 40" in logged
    assert progress_wire.PREFIX not in logged


def _run_in_a_terminal(script: str, timeout: float = 100) -> str:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, script], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, cwd=str(REPO_ROOT), env=_env())
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.timeout(120)
def test_bars_are_redrawn_in_place_on_a_terminal(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    screen = _run_in_a_terminal(str(script))
    assert "RESULT [60, 45, 50]" in screen
    assert "__shoal_progress__" not in screen
    pieces = [ANSI.sub("", p).strip() for p in re.split(r"[\r\n]", screen)]
    alpha = {m.group(1) for p in pieces if (m := re.match(r"alpha: .*\| (\d+)/60 ", p))}
    assert len(alpha) >= 3 and "60" in alpha, alpha  # drawn as it advanced, then done
    assert "\x1b[A" in screen  # several bars: tqdm moved between their lines
    for desc, count in FINAL.items():
        assert any(p.startswith(f"{desc}: 100%") and count in p for p in pieces), desc
    printed = [p for p in pieces if " line alpha " in p or " line beta " in p]
    assert {PRINTED.fullmatch(p).groups() for p in printed} == EXPECTED_PRINTS, printed

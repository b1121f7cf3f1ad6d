"""Run Ray's public core tests against shoal (or Ray itself) and count passes per file.

Nothing of Ray's is kept in this repository: the test files are taken at run time
from a Ray checkout (``--ray-repo``, e.g. the git directory the search tool's
``fetch github:dayshah/ray`` made) into ``--tests-dir``.  Our own fixtures
(``ray_compat/conftest.py``) and, for shoal, the ``ray`` -> ``shoal`` alias package
(``ray_compat/ray``, helpers in ``ray_compat/rayshim``) are copied next to them.

    python scripts/ray_compat_run.py --target shoal --python /tmp/venv-raycompat/bin/python
    python scripts/ray_compat_run.py --target ray --python /tmp/ray-venv/bin/python
    python scripts/ray_compat_run.py --compare RAY_OUT[,...] SHOAL_OUT[,...]   # the table

Each file runs in its own pytest process with a 60 s per-test timeout; results go
to ``<out>/<target>/<file>.xml`` and a table of passes per file is printed.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
PATTERNS = ["test_actor*.py", "test_basic*.py", "test_generators.py", "test_cancel.py",
            "test_asyncio.py", "test_actor_failures.py", "test_runtime_context.py",
            "test_concurrency_group.py", "test_failure*.py", "test_streaming_generator*.py"]


# Tests that block inside Ray's C++ get on this machine, where pytest-timeout's signal
# never lands (the file's run hangs for ever): not run on Ray, so they count as not
# passing there.
HANGS_ON_RAY = {"test_asyncio.py": ("test_asyncio_exit_actor",)}


def run_file(cmd: list[str], cwd: str, env: dict, limit: float) -> None:
    """One file's pytest in its own process group, killed whole (clusters it started
    included) if it outlives ``limit`` seconds."""
    # SIGINT back to its default: a harness started in the background (``cmd &``)
    # inherits it ignored, and Ray's SIGINT tests (DeferSigint) then see no signal
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def extract(ray_repo: str, dest: str) -> list[str]:
    names = subprocess.run(["git", "--git-dir", ray_repo, "ls-tree", "--name-only", "HEAD",
                            "python/ray/tests/"], capture_output=True, text=True,
                           check=True).stdout.split()
    os.makedirs(dest, exist_ok=True)
    picked = []
    for path in names:
        base = os.path.basename(path)
        if any(fnmatch.fnmatch(base, p) for p in PATTERNS):
            text = subprocess.run(["git", "--git-dir", ray_repo, "show", f"HEAD:{path}"],
                                  capture_output=True, check=True).stdout
            with open(os.path.join(dest, base), "wb") as f:
                f.write(text)
            picked.append(base)
    return sorted(picked)


def counts(xml_path: str) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "skipped": 0}
    if not os.path.exists(xml_path):
        return out
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            out["failed"] += 1
        elif "skipped" in kinds:
            out["skipped"] += 1
        else:
            out["passed"] += 1
    return out


def outcomes(xml_path: str) -> dict[str, str]:
    """test name -> passed / failed / skipped (empty if the file did not run)."""
    out: dict[str, str] = {}
    if not os.path.exists(xml_path):
        return out
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        out[case.get("name")] = ("failed" if kinds & {"failure", "error"} else
                                 "skipped" if "skipped" in kinds else "passed")
    return out


def compare(ray_dirs: list[str], shoal_dirs: list[str]) -> None:
    """Per file: tests passing on Ray, on shoal, and on shoal among those passing on Ray
    (the later directory of each list wins for a file present in several)."""
    files = sorted({f[:-4] for d in ray_dirs + shoal_dirs if os.path.isdir(d)
                    for f in os.listdir(d) if f.endswith(".py.xml")})
    print("| file | Ray passed | shoal passed | of Ray's passes, shoal passes |")
    print("| --- | --- | --- | --- |")
    totals = [0, 0, 0]
    for name in files:
        ray = {}
        for d in ray_dirs:
            ray.update(outcomes(os.path.join(d, name + ".xml")) or {})
        sh = {}
        for d in shoal_dirs:
            sh = outcomes(os.path.join(d, name + ".xml")) or sh
        if not ray or not sh:
            continue
        ray_pass = {t for t, o in ray.items() if o == "passed"}
        sh_pass = {t for t, o in sh.items() if o == "passed"}
        both = len(ray_pass & sh_pass)
        totals = [totals[0] + len(ray_pass), totals[1] + len(sh_pass), totals[2] + both]
        print(f"| {name} | {len(ray_pass)} | {len(sh_pass)} | {both} |")
    print(f"| total | {totals[0]} | {totals[1]} | {totals[2]} "
          f"({100 * totals[2] / max(1, totals[0]):.0f}%) |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--compare":
        ray_dirs = sys.argv[2].split(",")
        shoal_dirs = sys.argv[3].split(",")
        compare(ray_dirs, shoal_dirs)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", choices=["shoal", "ray"], required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--ray-repo", default="/work/.mirror/dayshah+ray/repo")
    ap.add_argument("--tests-dir", default="/tmp/raytests")
    ap.add_argument("--out", default="/tmp/raycompat-results")
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--file-timeout", type=int, default=1800,
                    help="wall-clock bound of one file's pytest (its process group is killed)")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    files = args.files or extract(args.ray_repo, args.tests_dir)
    for name in ("conftest.py", "pytest.ini"):
        shutil.copy(os.path.join(HERE, "ray_compat", name), args.tests_dir)
    env = dict(os.environ)
    if args.target == "shoal":
        # the alias package first, then this checkout's shoal (not whichever one the
        # interpreter has installed)
        env["PYTHONPATH"] = os.pathsep.join([os.path.join(HERE, "ray_compat"),
                                             os.path.dirname(HERE)])
    out_dir = os.path.join(args.out, args.target)
    os.makedirs(out_dir, exist_ok=True)
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for name in files:
        xml = os.path.join(out_dir, name + ".xml")
        deselect = [f"--deselect={name}::{t}" for t in HANGS_ON_RAY.get(name, ())
                    if args.target == "ray"]
        run_file([args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  f"--timeout={args.timeout}", f"--junitxml={xml}", *deselect, name],
                 args.tests_dir, env, args.file_timeout)
        c = counts(xml)
        for k in total:
            total[k] += c[k]
        print(f"{name:45s} passed {c['passed']:4d} failed {c['failed']:4d} "
              f"skipped {c['skipped']:4d}", flush=True)
    print(f"{'TOTAL':45s} passed {total['passed']:4d} failed {total['failed']:4d} "
          f"skipped {total['skipped']:4d}")


if __name__ == "__main__":
    main()

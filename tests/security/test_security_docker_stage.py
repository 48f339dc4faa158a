"""A process the model leaves in a docker container cannot rewrite what oec's own commands read back from it.

oec's own scripts (git diff, git apply, reading the pytest report) run in the task's container and leave
their output in files of the stage folder (/tmp/oec-stage), read back through the archive API. The model
runs as the image's user (root in SWE-bench's images, and in the test image here), so no file mode keeps
it out: what protects these files is that no process of the model's is alive once oec's own command
starts (`DockerSession.exec_trusted` kills them first).

The attacker escapes the marker-based reaping the simple way (`env -i setsid`: its environment no longer
carries the command's marker), then polls the stage folder and replaces every output file of oec's
commands it sees (either layout: files named oec-trusted-*.out/.code, or such a folder per command) with
its own text and exit status 0. Without the fix, `diff()` returns the fake diff and a patch that leaves
the bug in place grades "resolved".

Not covered here, as documented in `oec.grading.report_plugin`: the pytest report itself is written by
the test process, where the patch's code runs, so that code (or a process it starts) can write it while
the tests run; `oec filter` drops patches that reach for it by name.

Real containers, from the image the real-engine tests build (`docker_images`); with no engine these fail
and say why, as the other real-engine tests do.
"""

from __future__ import annotations

import json
import shlex

import docker_images
import pytest

from oec.env.docker_backend import STAGE_DIR, DockerSession
from oec.env.repos import RepoIndex
from oec.grading.grader import grade
from oec.tasks.model import Task

pytest.importorskip("docker", reason="the docker SDK (oec[scale]) is not installed")

F2P, P2P = "tests/test_calc.py::test_add", "tests/test_calc.py::test_mul"
FAKE_DIFF = "diff --git a/FAKE b/FAKE\n"
#: what the report of a run where everything passed says (the exit status the real, failing run has)
FAKE_REPORT = "".join(json.dumps(r) + "\n" for r in [
    {"event": "start", "pid": 1},
    *({"event": "test", "nodeid": t, "when": "call", "outcome": "passed", "wasxfail": False} for t in (F2P, P2P)),
    {"event": "finish", "exitstatus": 1},
])

#: the survivor (argv: the text to put in the outputs): for a minute, replace every output of oec's commands
#: with it, and every exit status with 0; its pid goes to /tmp/attacker.pid
ATTACKER = f"""
import os, sys, time
open("/tmp/attacker.pid", "w").write(str(os.getpid()))
fake, stage, deadline = sys.argv[1], {str(STAGE_DIR)!r}, time.time() + 60
def put(path, text):  # replaced whole (a rename), so no read sees it half-written
    try:
        if open(path).read() != text:
            with open(path + ".new", "w") as fh:
                fh.write(text)
            os.replace(path + ".new", path)
    except OSError:
        pass
while time.time() < deadline:
    try:
        names = [n for n in os.listdir(stage) if n.startswith("oec-trusted-")]
    except OSError:
        continue
    for name in names:
        path = os.path.join(stage, name)
        try:
            files = [os.path.join(path, n) for n in os.listdir(path)] if os.path.isdir(path) else [path]
        except OSError:
            continue
        for f in files:
            if f.endswith("out"):
                put(f, fake)
            elif f.endswith("code"):
                put(f, "0\\n")
"""


def survive(fake: str) -> str:
    """Shell that starts the attacker where the reaping after the command does not find it, and waits until
    it runs (python writes the pid file; by then its environment is empty)."""
    return (f"env -i setsid python3 -c {shlex.quote(ATTACKER)} {shlex.quote(fake)} </dev/null >/dev/null 2>&1 &\n"
            "for i in $(seq 200); do [ -s /tmp/attacker.pid ] && break; sleep 0.1; done")


@pytest.fixture(scope="module")
def calc_image(engine, tmp_path_factory: pytest.TempPathFactory) -> Task:
    yield from docker_images.calc_task_image(engine, tmp_path_factory.mktemp("docker-context"), "oec-test-calc-stage")


def _attacker_alive(session: DockerSession) -> bool:
    return session.run("kill -0 $(cat /tmp/attacker.pid) 2>/dev/null && echo alive").output.strip() == "alive"


def test_a_process_left_by_the_model_cannot_rewrite_the_diff(calc_image: Task) -> None:
    with DockerSession.open(calc_image) as session:
        session.run("sed -i 's/return a - b/return a + b/' calc/__init__.py")
        session.run(survive(FAKE_DIFF))
        assert _attacker_alive(session), "the attacker did not outlive its command: the test attacks nothing"
        for _ in range(3):
            assert session.diff() == calc_image.patch
        assert not _attacker_alive(session)


def test_a_process_started_by_the_patch_cannot_rewrite_the_report_oec_reads_back(calc_image: Task) -> None:
    """The patch leaves the bug in place; imported by the test run, it starts the attacker, which waits for the
    read of the report after the run and puts an all-passing one in its place."""
    launch = (f"import subprocess\nsubprocess.Popen({['sh', '-c', survive(FAKE_REPORT)]!r}, "
              "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait()\n")
    lines = launch.splitlines()
    patch = ("diff --git a/calc/__init__.py b/calc/__init__.py\n--- a/calc/__init__.py\n+++ b/calc/__init__.py\n"
             f"@@ -1,2 +1,{len(lines) + 2} @@\n" + "".join(f"+{line}\n" for line in lines)
             + " def add(a, b):\n     return a - b\n")
    result = grade(calc_image, patch, RepoIndex([]), env="docker")
    assert result.status == "unresolved" and not result.resolved, (result.status, result.reason)
    assert result.tests == {F2P: "FAILED", P2P: "PASSED"} and result.status_source == "report"

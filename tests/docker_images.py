"""Docker images for the real-engine tests, built on this machine (no registry is reachable).

The base image is a Debian bookworm root made with `debootstrap --variant=minbase --include=python3,
python3-pytest,git` from the mirror apt already uses, `python` linked to python3, imported with `docker
import`: about a minute once, then found by its tag. Project images are FROM it with a repository at
/testbed, the way SWE-bench and SWE-smith images hold theirs.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

SUITE = "bookworm"
PACKAGES = "python3,python3-pytest,git"
RECIPE = f"debootstrap --variant=minbase --include={PACKAGES} {SUITE}; python -> python3"
BASE_TAG = f"oec-test-base:{SUITE}-{hashlib.sha256(RECIPE.encode()).hexdigest()[:8]}"


def connect():
    """A client of the engine, or a test failure saying why there is none (never a silent skip)."""
    docker = pytest.importorskip("docker", reason="the docker SDK (oec[scale]) is not installed")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        pytest.fail(f"no docker engine answers ({type(exc).__name__}: {exc}). `make test` installs docker.io and "
                    "starts dockerd as root; start one (`dockerd &`) or point DOCKER_HOST at one", pytrace=False)
    return client


def apt_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 .sources or a sources.list line)."""
    candidates = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        found = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.MULTILINE) or \
            re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)\s+\w+", text, re.MULTILINE)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def base_image(client) -> str:
    """The tag of the base image, built now if this engine does not have it."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(BASE_TAG)
        return BASE_TAG
    except ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed (`make test` installs it): the base image cannot be built",
                    pytrace=False)
    with tempfile.TemporaryDirectory(prefix="oec-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root),
                               apt_mirror()], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"debootstrap failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}", pytrace=False)
        (root / "usr/bin/python").symlink_to("python3")
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", BASE_TAG], stdin=tar.stdout, capture_output=True,
                                  text=True)
        tar.wait()
        if imported.returncode != 0:
            pytest.fail(f"docker import failed: {imported.stderr}", pytrace=False)
    return BASE_TAG


def repository_image(client, tag: str, repository: Path) -> str:
    """An image FROM the base with `repository` (a git checkout, .git included) at /testbed."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = f"FROM {base_image(client)}\nCOPY testbed /testbed\nWORKDIR /testbed\n".encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(str(repository), arcname="testbed")
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return tag



def calc_task_image(client, context: Path, prefix: str):
    """Yield the calc task (`conftest.make_calc_repo`) with an image of its own, `<prefix>:<random>`, built
    from the repository made in `context`; remove the image afterwards. For module fixtures: `yield from`."""
    import uuid

    from conftest import make_calc_repo

    from oec.tasks.model import Task

    tag = f"{prefix}:{uuid.uuid4().hex[:8]}"
    task = Task.model_validate({**make_calc_repo(context / "testbed"), "image_name": tag})
    repository_image(client, tag, context / "testbed")
    yield task
    client.images.remove(tag, force=True)

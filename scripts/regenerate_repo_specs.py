"""Regenerate src/oec/grading/specs/repo_specs.json from the maintained sources: swebench and swesmith.

    python3 -m venv /tmp/specs-venv
    /tmp/specs-venv/bin/pip install swebench==4.1.0 swesmith==0.0.9
    /tmp/specs-venv/bin/python scripts/regenerate_repo_specs.py

Why these versions and why a separate environment: oec needs, per repository,
the test command, the log parser and the commands run before the tests. For
SWE-bench's Python repositories those live in swebench 4.x
(`MAP_REPO_VERSION_TO_SPECS_PY`, `MAP_REPO_TO_PARSER_PY`); swebench 5 moved
them into the dataset rows. SWE-smith's repository profiles live in swesmith
0.0.9, which imports swebench 4.x (5.0.2 lacks the constants it needs). Both
packages pull in docker, datasets, modal and more; importing swebench's
harness costs about 1.6 s and 175 MB, so oec reads the facts from this file
instead of importing the packages at run time. This script does not import oec.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "oec" / "grading" / "specs" / "repo_specs.json"


def swebench_specs() -> dict:
    from swebench.harness.constants import NON_TEST_EXTS
    from swebench.harness.constants.python import MAP_REPO_VERSION_TO_SPECS_PY
    from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY

    repos = {}
    for repo, versions in sorted(MAP_REPO_VERSION_TO_SPECS_PY.items()):
        if repo not in MAP_REPO_TO_PARSER_PY:
            continue  # no log parser: not gradable (dbt-core, humaneval)
        repos[repo] = {
            "log_parser": MAP_REPO_TO_PARSER_PY[repo].__name__,
            # swebench.harness.test_spec.python.get_test_directives: django runs test modules, the rest files
            "directives": "django-modules" if repo == "django/django" else "files",
            "versions": {
                version: {"test_cmd": spec["test_cmd"], "eval_commands": list(spec.get("eval_commands", [])),
                          "install": spec.get("install"), "python": spec.get("python")}
                for version, spec in sorted(versions.items()) if spec.get("test_cmd")
            },
        }
    return {"non_test_exts": list(NON_TEST_EXTS), "repos": repos}


def swesmith_specs() -> dict:
    import swesmith.profiles.python as python_profiles
    from swesmith.profiles.base import registry

    profiles = {}
    for key in registry.keys():
        profile = registry.get(key)
        if not isinstance(profile, python_profiles.PythonProfile):
            continue
        own_parser = type(profile).log_parser is not python_profiles.PythonProfile.log_parser
        own_cmd = type(profile).get_test_cmd is not python_profiles.PythonProfile.get_test_cmd
        profiles[profile.mirror_name] = {
            "repo_name": profile.repo_name,
            "image_name": profile.image_name,
            "test_cmd": profile.test_cmd,
            "log_parser": type(profile).__name__ if own_parser else "PythonProfile",
            "test_selection": type(profile).__name__ if own_cmd else ("files" if profile.min_testing else "suite"),
            "python": profile.python_version,
        }
    return {"profiles": dict(sorted(profiles.items()))}


def main() -> None:
    data = {
        "generated_by": "scripts/regenerate_repo_specs.py",
        "sources": {name: importlib.metadata.version(name) for name in ("swebench", "swesmith")},
        "swebench": swebench_specs(),
        "swesmith": swesmith_specs(),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}: {len(data['swebench']['repos'])} SWE-bench repositories, "
          f"{len(data['swesmith']['profiles'])} SWE-smith Python profiles", file=sys.stderr)


if __name__ == "__main__":
    main()

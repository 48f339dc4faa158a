"""The divergence spec (`oec collect --switch`), parsed strictly: never code from a string.

::

    divergence:DETECTOR[,DETECTOR...][;min=A][,max=B]

    loop[=N]          the same action N times in a row, or the same (action, observation) N times (N >= 2; 3)
    errors[=N]        N format errors or failing commands in a row (N >= 1; 3)
    regression[=K]    a PASS_TO_PASS test that passed at the start fails after a student edit; the tests run
                      at most every K student steps and only when the diff changed (K >= 1; 5)
    judge[=K]         every K student steps the expert is asked whether the student is on track (K >= 1; 5)
    likelihood[=LP]   the expert's mean log-probability of the student's last reply is below LP (LP <= 0; -4)
    oracle            privileged, the task's gold patch: the student edited a file the gold patch does not
                      touch, or removed a line of the fix it had added
    min=A             never switch before A student calls (a firing before that waits for step A)
    max=B             always switch by B student calls (the cap; the record says "cap")

e.g. ``divergence:loop=3,errors=3,regression=5,judge=5,likelihood=-4.0,oracle;min=2,max=30``.
The detectors, their defaults and bounds come from the registry.
"""

from __future__ import annotations

import re

from oec.collect.divergence.registry import ENTRIES, REGISTRY, Entry, Setting
from oec.collect.divergence.switch import DivergenceSwitch

FORMS = ("divergence:DETECTOR[,DETECTOR...][;min=A][,max=B] with detectors "
         + ", ".join(e.form for e in REGISTRY)
         + "; e.g. divergence:loop=3,errors=3,regression=5,judge=5,likelihood=-4.0,oracle;min=2,max=30")


def _bad(spec: str, problem: str) -> ValueError:
    return ValueError(f"--switch {spec!r}: {problem} (forms: {FORMS})")


def _int_at_least(spec: str, name: str, text: str, low: int) -> int:
    if not re.fullmatch(r"\d+", text):
        raise _bad(spec, f"{name}={text} is not a whole number")
    value = int(text)
    if value < low:
        raise _bad(spec, f"{name}={value} must be at least {low}")
    return value


def _setting(spec: str, entry: Entry, eq: str, value: str) -> Setting:
    """A detector's value from ``name[=value]``: its default when none is given."""
    name = entry.name
    if eq and not value:
        raise _bad(spec, f"{name}= needs a value")
    if entry.kind == "flag":
        if eq:
            raise _bad(spec, f"{name} takes no value")
        return True
    if not eq:
        return entry.default
    if entry.kind == "logprob":
        if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)", value):
            raise _bad(spec, f"{name}={value} is not a number")
        if float(value) > 0:
            raise _bad(spec, f"{name}={value}: a mean log-probability is at most 0")
        return float(value)
    return _int_at_least(spec, name, value, entry.low)


def _detectors(spec: str, text: str) -> dict[str, Setting]:
    """The detectors part (``loop=3,oracle``): each name known and given once."""
    settings: dict[str, Setting] = {}
    for token in (t.strip() for t in text.split(",")):
        name, eq, value = token.partition("=")
        if name not in ENTRIES:
            raise _bad(spec, f"unknown detector {token!r}" if token else "an empty detector")
        if name in settings:
            raise _bad(spec, f"detector {name} is given twice")
        settings[name] = _setting(spec, ENTRIES[name], eq, value)
    return settings


def _options(spec: str, text: str) -> dict[str, int]:
    """The options part (``min=2,max=30``)."""
    options: dict[str, int] = {}
    for token in (t.strip() for t in text.split(",")):
        name, eq, value = token.partition("=")
        if name not in ("min", "max") or not eq:
            raise _bad(spec, f"unknown option {token!r}; options are min=A and max=B")
        if name in options:
            raise _bad(spec, f"option {name} is given twice")
        options[name] = _int_at_least(spec, name, value, 0)
    return options


def parse_divergence(spec: str) -> DivergenceSwitch:
    """Parse ``divergence:...`` (grammar above); a ValueError names the problem and the forms."""
    text = spec.strip().lower()
    head, colon, body = text.partition(":")
    if head != "divergence":
        raise _bad(spec, "not a divergence spec")
    if not colon or not body.strip():
        raise _bad(spec, "names no detector")
    detector_part, semi, option_part = body.partition(";")
    if semi and not option_part.strip():
        raise _bad(spec, "';' must be followed by min=A and/or max=B")
    settings = _detectors(spec, detector_part)
    options = _options(spec, option_part) if semi else {}
    low, high = options.get("min", 0), options.get("max")
    if high is not None and low > high:
        raise _bad(spec, f"min={low} is after max={high}")
    return DivergenceSwitch(**settings, min_step=low, max_step=high)

"""Match a task's FAIL_TO_PASS/PASS_TO_PASS ids to the ids a run reported.

Task files list ids as SWE-bench's (or SWE-smith's) parsers wrote them, and
those parsers bend ids: most pytest ones keep only the text before the first
space (`test_x[log(photon` for `test_x[log(photon energy)]`), some shorten a
parameter that is a path to its last component, matplotlib's writes mouse
buttons as numbers, and `parse_log_pytest_v2` keeps an XFAIL's or ERROR's
" - message" in the id. oec reports full ids, so a listed id that no reported id
equals is looked up again through those same bends. A listed id that several
reported ids bend to (two parametrizations cut to one prefix) passes only if
all of them pass, where SWE-bench's parser would keep whichever it saw last.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from oec.grading.log_parsers import PASSING, TestStatus, strip_message

__all__ = ["ID_RULES", "match_ids", "match_statuses"]

_OPTION = re.compile(r"(.*?)\[(.*)\]")


def _cut_at_space(test_id: str) -> str:
    return test_id.split()[0] if test_id.split() else test_id


def _option_paths(test_id: str) -> str:
    """SWE-bench's `parse_log_pytest_options`: a parameter that is a path keeps only its last component."""
    found = _OPTION.search(test_id)
    if not found:
        return test_id
    main, option = found.groups()
    if option.startswith("/") and not option.startswith("//") and "*" not in option:
        option = "/" + option.split("/")[-1]
    return f"{main}[{option}]"


def _mouse_buttons(test_id: str) -> str:
    return test_id.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3")


def _same(test_id: str) -> str:
    return test_id


#: a spec's `id_rules` names -> (the bend of a reported id, the bend of a listed id); a listed id matches a
#: reported one when the two bends agree. Always tried after the ids as they are.
ID_RULES: dict[str, tuple[Callable[[str], str], Callable[[str], str]]] = {
    "cut-at-space": (_cut_at_space, _same),
    "option-paths": (lambda test_id: _cut_at_space(_option_paths(test_id)), _same),
    "mouse-buttons": (lambda test_id: _cut_at_space(_mouse_buttons(test_id)), _same),
    # SWE-bench's `parse_log_pytest_v2` cuts " - message" from FAILED lines only: XFAIL and ERROR ids keep it
    "message-suffix": (_same, strip_message),
}


def _combined(statuses: list[TestStatus]) -> TestStatus:
    """One status for several reported ids behind one listed id: the worst of them."""
    failing = [s for s in statuses if s not in PASSING]
    if failing:
        return failing[-1]
    return TestStatus.PASSED if TestStatus.PASSED in statuses else statuses[-1]


def match_ids(listed: Iterable[str], reported: Iterable[str], rules: Iterable[str] = ("cut-at-space",)
              ) -> dict[str, list[str]]:
    """The reported ids behind each listed id that the run reported: as listed, else through the rules."""
    reported = list(reported)
    exact = set(reported)
    bent: dict[str, dict[str, list[str]]] = {}
    matched: dict[str, list[str]] = {}
    for test_id in listed:
        if test_id in exact:
            matched[test_id] = [test_id]
            continue
        for rule in rules:
            reported_bend, listed_bend = ID_RULES[rule]
            if rule not in bent:
                table: dict[str, list[str]] = {}
                for reported_id in reported:
                    table.setdefault(reported_bend(reported_id), []).append(reported_id)
                bent[rule] = table
            found = bent[rule].get(listed_bend(test_id))
            if found:
                matched[test_id] = found
                break
    return matched


def match_statuses(listed: Iterable[str], reported: Mapping[str, TestStatus],
                   rules: Iterable[str] = ("cut-at-space",)) -> dict[str, TestStatus]:
    """The status of each listed id that the run reported (several reported ids behind one: the worst)."""
    return {test_id: _combined([reported[r] for r in found])
            for test_id, found in match_ids(listed, reported, rules).items()}

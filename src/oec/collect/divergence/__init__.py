"""Divergence switching: the expert takes over when the student is seen going off course.

A random switch step spends expert calls on students that were doing fine and misses the moment a
student breaks. Here small typed detectors watch the rollout after every STUDENT step and, when one
fires, the expert takes over at once (no earlier than `min`, and always by `max`, the cap). Each firing
says why (`Firing`: detector, step, evidence, reason) and is written into the trajectory, so a report can
tell a loop takeover from a broken test.

The parts, one job each:

- `spec`: the ``divergence:...`` grammar, parsed strictly, into a `DivergenceSwitch` (`switch`), the
  frozen sampler shared by every rollout of a run;
- `registry`: every detector in one table (name, spec parameter, factory, cost), in canonical order;
- `loop`, `errors`, `regression`, `judge`, `likelihood`, `oracle`: one detector each, behind the
  `Detector` protocol (`watch`);
- `monitor`: one rollout's detectors; the episode asks it for a verdict after each student step, keeps
  the first firing and passes it to `DivergenceSwitch.should_switch`;
- `record`: what the trajectory keeps (the firing, or "cap", and the checks).
"""

from __future__ import annotations

from oec.collect.divergence.errors import ErrorsDetector
from oec.collect.divergence.judge import JUDGE_QUESTION, JudgeDetector, parse_verdict
from oec.collect.divergence.likelihood import LikelihoodDetector
from oec.collect.divergence.loop import LoopDetector
from oec.collect.divergence.monitor import DivergenceMonitor, monitor_for
from oec.collect.divergence.oracle import OracleDetector, added_lines
from oec.collect.divergence.record import switch_record
from oec.collect.divergence.registry import DETECTORS, REGISTRY
from oec.collect.divergence.regression import RegressionDetector, regression_command
from oec.collect.divergence.spec import FORMS, parse_divergence
from oec.collect.divergence.switch import DivergenceSwitch
from oec.collect.divergence.watch import Detector, Watch, WatchedEnv
from oec.collect.records import Firing

__all__ = [
    "DETECTORS",
    "FORMS",
    "JUDGE_QUESTION",
    "REGISTRY",
    "Detector",
    "DivergenceMonitor",
    "DivergenceSwitch",
    "ErrorsDetector",
    "Firing",
    "JudgeDetector",
    "LikelihoodDetector",
    "LoopDetector",
    "OracleDetector",
    "RegressionDetector",
    "Watch",
    "WatchedEnv",
    "added_lines",
    "monitor_for",
    "parse_divergence",
    "parse_verdict",
    "regression_command",
    "switch_record",
]

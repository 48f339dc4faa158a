"""Rollouts as Ray tasks, scheduled over the nodes of a Ray cluster: an agent task, then a grading task.

Each agent task (the rollout up to its patch) declares `cpus_per_rollout`
CPUs (small by default: a rollout mostly waits for its model server, and its
commands are bounded by the sandbox, not by Ray) and one unit of the custom
``sandbox`` resource, so a node runs at most as many rollouts as it has
sandbox slots (``ray start --resources '{"sandbox": N}'``). A local cluster
started here gets ``--concurrency`` slots, and logical CPUs for those rollouts
plus one grader per core. Grading, CPU-bound where tests run
locally, is a separate task of `cpus_per_grading` CPUs (no sandbox slot), at
most `grading_slots` at once: the next rollout's agent starts while the last
one is graded, so the model servers are not left idle by slow tests.

What travels to a worker is the task, the sample index and the run's
`RolloutConfig`, whose model providers are `PortableProvider`s (spec and
options only: each worker builds its models once and reuses them), and for
grading the ungraded record. Trajectories come back as JSON and only the
driver writes the run directory. The driver keeps at most `concurrency` agent
tasks submitted (and at most `concurrency` rollouts waiting to be graded) and
collects them with a `ray.wait` loop, so a stop request keeps the rest from starting.

Paths in the config (repos folders, work root, ``scripted:@file`` and
``hf:/checkpoint`` specs) must name the same thing on every node (a shared
or identically laid out filesystem); the bundled suite's repos are rebuilt on
a node that lacks them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
import warnings
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

try:
    import ray
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("--executor ray needs Ray: pip install 'oec[scale]'") from exc

from oec.collect.executors import (RolloutJob, default_grading_slots, failure_trajectory, safe_agent,
                                  safe_grade, work_roots)
from oec.collect.interrupt import StopSignal
from oec.collect.records import Trajectory
from oec.collect.rollout import RolloutConfig, needs_grading
from oec.env.repos import RepoIndex
from oec.tasks.model import Task

log = logging.getLogger(__name__)

SANDBOX_RESOURCE = "sandbox"
_BUNDLED_PREFIX = "bundled-repos-"


def _localize(config: RolloutConfig) -> RolloutConfig:
    """On a worker: swap a bundled-suite repos folder this node lacks for one built here."""
    dirs = config.repos.dirs
    if all(d.is_dir() or not d.name.startswith(_BUNDLED_PREFIX) for d in dirs):
        return config
    from oec.tasks.bundled import bundled_repos_dir

    local = [d if d.is_dir() or not d.name.startswith(_BUNDLED_PREFIX) else bundled_repos_dir() for d in dirs]
    return dataclasses.replace(config, repos=RepoIndex(local))


def _agent_on_worker(task: Task, sample: int, config: RolloutConfig) -> str:
    """The agent Ray task: a rollout up to its patch, on whichever node has a free sandbox slot; its record as JSON."""
    job = RolloutJob(task, sample, _localize(config))
    return asyncio.run(safe_agent(job)).model_dump_json()


def _grade_on_worker(task: Task, sample: int, config: RolloutConfig, record_json: str, waited_s: float) -> str:
    """The grading Ray task: grade a finished agent phase's patch on whichever node has a free CPU."""
    job = RolloutJob(task, sample, _localize(config))
    record = Trajectory.model_validate_json(record_json)
    return asyncio.run(safe_grade(job, record, waited_s=waited_s)).model_dump_json()


def _sweep_on_node(roots: list[str | None]) -> str:
    """Remove leftovers of dead runs on this node (work roots: None means this node's default)."""
    from oec.env.leftovers import sweep
    from oec.env.workspace import default_work_root

    return str(sweep([Path(r) if r else default_work_root() for r in roots]))


class RayExecutor:
    """Runs each rollout as a Ray task; connects to `address` or starts a local cluster (see the module docstring)."""

    def __init__(self, concurrency: int = 4, *, address: str | None = None, cpus_per_rollout: float = 0.25,
                 grading_slots: int | None = None, cpus_per_grading: float = 1.0, poll_s: float = 0.2,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        self.concurrency = max(1, concurrency)
        self.grading_slots = max(1, grading_slots or default_grading_slots(self.concurrency))
        self.poll_s = poll_s
        self._owns_cluster = False
        self._abandoned = False
        self._roots: list[Path] = []
        if not ray.is_initialized():
            if address:
                ray.init(address=address, **(init_kwargs or {}))
            else:
                # logical CPUs for all the rollouts' agents plus one grader per core, so that neither
                # kind of task waits for the other on the one node (Ray's CPUs only count, they do not pin)
                cpus = math.ceil(self.concurrency * cpus_per_rollout) + (os.cpu_count() or 1)
                kwargs: dict[str, Any] = {"include_dashboard": False, "num_cpus": cpus,
                                          "resources": {SANDBOX_RESOURCE: float(self.concurrency)},
                                          **(init_kwargs or {})}
                ray.init(**kwargs)
                self._owns_cluster = True
        self.options: dict[str, Any] = {"num_cpus": cpus_per_rollout}
        if ray.cluster_resources().get(SANDBOX_RESOURCE):
            self.options["resources"] = {SANDBOX_RESOURCE: 1}
        else:
            warnings.warn(f"this Ray cluster has no {SANDBOX_RESOURCE!r} resource, so only CPUs bound the "
                          "rollouts per node; start nodes with ray start --resources "
                          f"'{{\"{SANDBOX_RESOURCE}\": N}}'", RuntimeWarning, stacklevel=2)
        self.grading_options: dict[str, Any] = {"num_cpus": cpus_per_grading}
        self._agent = ray.remote(_agent_on_worker)
        self._grade = ray.remote(_grade_on_worker)

    async def results(self, jobs: Sequence[RolloutJob], stop: StopSignal) -> AsyncGenerator[Trajectory, None]:
        self._roots = work_roots(j.config for j in jobs)
        if not self._owns_cluster:  # a local cluster's node is this machine, which the runner swept already
            self._sweep_nodes({j.config.work_root for j in jobs})
        flight = _Flight(self, list(reversed(jobs)))
        try:
            while True:
                flight.launch(stop)
                if flight.empty:
                    return
                if stop.abandoning.is_set():
                    self._cancel(flight.refs())
                    flight.clear()
                    return
                for ref in self._ready(flight.refs()):
                    record = flight.settle(ref)
                    if record is not None:
                        yield record
                await asyncio.sleep(0)  # let a SIGINT handler run between waits
        finally:
            if flight.refs():
                self._cancel(flight.refs())

    def _ready(self, pending: list[Any]) -> list[Any]:
        """The tasks done within one poll: wait for one, then take every other that is done too."""
        ready, _ = ray.wait(pending, num_returns=1, timeout=self.poll_s)
        if ready:
            rest = [r for r in pending if r not in ready]
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
        return ready

    @staticmethod
    def _trajectory(ref: Any, job: RolloutJob) -> Trajectory:
        try:
            return Trajectory.model_validate_json(ray.get(ref))
        except Exception as exc:  # the task raised or its worker died: this rollout's failure, not the run's
            return failure_trajectory(job, getattr(exc, "cause", None) or exc)

    @staticmethod
    def _graded(ref: Any, job: RolloutJob, record: Trajectory) -> Trajectory:
        try:
            return Trajectory.model_validate_json(ray.get(ref))
        except Exception as exc:  # the grading worker died: the rollout is kept, its grade is an error
            cause = getattr(exc, "cause", None) or exc
            record.exit_reason, record.error = "grade_error", f"{type(cause).__name__}: {cause}"
            return record

    def _cancel(self, refs: list[Any]) -> None:
        """Kill the workers running abandoned rollouts (their leftovers are swept once their pid is dead)."""
        self._abandoned = True
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception as exc:  # already finished or gone
                log.debug("ray.cancel: %s", exc)

    def _sweep_nodes(self, roots: set[Path | None]) -> None:
        """Clean dead runs' leftovers on every alive node, best effort (a node that does not answer is skipped)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        sweep = ray.remote(_sweep_on_node)
        refs = [sweep.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                .remote([str(r) if r else None for r in roots]) for n in ray.nodes() if n.get("Alive")]
        try:
            for node_report in ray.get(refs, timeout=30):
                log.info("swept leftovers of dead runs: %s", node_report)
        except Exception as exc:
            log.warning("could not sweep leftovers on every node: %s", exc)

    def close(self) -> None:
        """Shut down a cluster this executor started; after an abandon, sweep what its killed workers left."""
        if self._owns_cluster and ray.is_initialized():
            ray.shutdown()
            self._owns_cluster = False
            if self._abandoned:
                from oec.env.leftovers import sweep

                sweep(self._roots)


class _Flight:
    """The rollouts a `RayExecutor` has in the air: agent tasks, grading tasks, and the graded-to-be backlog.

    Agent phases run `concurrency` at a time; a finished one that needs grading waits in the backlog for one
    of the `grading_slots`, so a rollout being graded no longer holds an agent slot.
    """

    def __init__(self, executor: RayExecutor, queue: list[RolloutJob]) -> None:
        self.executor = executor
        self.queue = queue  # reversed: the next job is at the end
        self.agents: dict[Any, RolloutJob] = {}
        self.graders: dict[Any, tuple[RolloutJob, Trajectory]] = {}
        self.backlog: list[tuple[RolloutJob, Trajectory, float]] = []  # agent phase done, waiting for a grader
        self._shared: dict[int, Any] = {}  # each RolloutConfig is sent to the object store once

    @property
    def empty(self) -> bool:
        return not self.agents and not self.graders and not self.backlog

    def refs(self) -> list[Any]:
        return [*self.agents, *self.graders]

    def clear(self) -> None:
        self.agents.clear()
        self.graders.clear()

    def _config_ref(self, job: RolloutJob) -> Any:
        if id(job.config) not in self._shared:
            self._shared[id(job.config)] = ray.put(job.config)
        return self._shared[id(job.config)]

    def launch(self, stop: StopSignal) -> None:
        """Start agent phases while slots are free (and no stop), then gradings while grading slots are."""
        ex = self.executor
        while (self.queue and len(self.agents) < ex.concurrency and not stop.stopping.is_set()
               and len(self.graders) + len(self.backlog) < ex.grading_slots + ex.concurrency):
            job = self.queue.pop()
            self.agents[ex._agent.options(**ex.options).remote(job.task, job.sample, self._config_ref(job))] = job
        while self.backlog and len(self.graders) < ex.grading_slots:
            job, record, queued = self.backlog.pop(0)
            ref = ex._grade.options(**ex.grading_options).remote(
                job.task, job.sample, self._config_ref(job), record.model_dump_json(), time.monotonic() - queued)
            self.graders[ref] = (job, record)

    def settle(self, ref: Any) -> Trajectory | None:
        """The finished rollout behind a done task, or None when its agent phase now waits for grading."""
        if ref not in self.agents:
            return self.executor._graded(ref, *self.graders.pop(ref))
        job = self.agents.pop(ref)
        record = self.executor._trajectory(ref, job)
        if needs_grading(record, job.config):
            self.backlog.append((job, record, time.monotonic()))
            return None
        return record

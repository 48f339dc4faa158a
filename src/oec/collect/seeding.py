"""Every random draw is seeded per (run seed, instance, strategy, sample): reruns and resumes agree."""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, instance_id: str, strategy: str, sample_index: int) -> int:
    """A 63-bit seed that depends only on these four values (not on order, concurrency or time)."""
    key = f"{seed}\x1f{instance_id}\x1f{strategy}\x1f{sample_index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def rollout_rng(seed: int, instance_id: str, strategy: str, sample_index: int) -> random.Random:
    return random.Random(derive_seed(seed, instance_id, strategy, sample_index))

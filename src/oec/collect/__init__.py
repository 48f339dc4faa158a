"""Collection: the episode loop, switch schedules, and the runner that keeps many rollouts in flight."""

"""Evaluation: student-only rollouts on held-out tasks, graded, with honest intervals."""

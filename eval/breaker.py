"""A circuit breaker for remote policies: a dead server costs seconds, not minutes per remaining episode.

After ``limit`` consecutive episodes of one policy end in an error (a ``PolicyError`` from a remote policy,
timeouts and retries included, or any other exception the policy raises), the
breaker trips for that policy: its remaining episodes are recorded as ``policy_error`` at once, without contacting
the server again, and the run says so in one line and exits non-zero. Other policies in the grid go on.
``--resume`` after the server is back skips those rows too; delete them to rerun them.
"""

from __future__ import annotations

import sys
from typing import Any

from eval.runner import Episode, episode_row
from leisaac_tasks.outcomes import EpisodeOutcome, Outcome
from leisaac_tasks.scenarios import INGREDIENTS

DEFAULT_LIMIT = 3


class CircuitBreaker:
    def __init__(self, limit: int = DEFAULT_LIMIT):
        self.limit = limit
        self.streak: dict[str, int] = {}
        self.tripped: dict[str, str] = {}  # policy -> the last error before it tripped

    def record(self, row: dict[str, Any]) -> None:
        policy, error = row["policy"], str(row.get("error", ""))
        if not error:
            self.streak[policy] = 0
            return
        self.streak[policy] = self.streak.get(policy, 0) + 1
        if self.limit and self.streak[policy] >= self.limit and policy not in self.tripped:
            self.tripped[policy] = error
            print(f"circuit breaker: {policy} failed {self.limit} episodes in a row ({error[:160]}); its remaining "
                  f"episodes are recorded as policy_error without contacting it", file=sys.stderr, flush=True)

    def skipped_row(self, episode: Episode, backend: str) -> dict[str, Any] | None:
        """The row for an episode of a tripped policy, or None if the policy may still run."""
        if episode.policy not in self.tripped:
            return None
        untouched = EpisodeOutcome({i: Outcome.UNTOUCHED if episode.scenario.present(i) else Outcome.ABSENT
                                    for i in INGREDIENTS})
        error = (f"PolicyError: not run: the circuit breaker tripped after {self.limit} consecutive failures of "
                 f"{episode.policy}; fix the server and rerun these episodes (delete their rows first)")
        return episode_row(episode, backend, untouched, error, 0, 0.0, 0.0)

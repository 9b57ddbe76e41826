"""The A/B split: which model answers a user, decided by the user id alone.

A hash of the id (not a random draw) keeps a user on the same variant across requests,
processes and restarts; changing the share moves only the users between the old and the new
boundary. SHA-256 spreads any id format (sequential, UUID, e-mail) uniformly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PRODUCTION = "production"
CHALLENGER = "challenger"
# Part of the hashed text: another experiment with another salt splits users independently.
DEFAULT_SALT = "streamflow-ab-1"


@dataclass(frozen=True)
class Split:
    challenger_alias: str | None = None
    challenger_share: float = 0.0
    salt: str = DEFAULT_SALT

    def __post_init__(self) -> None:
        if not 0.0 <= self.challenger_share <= 1.0:
            raise ValueError(f"challenger_share={self.challenger_share}: give a share from 0 to 1")

    @property
    def active(self) -> bool:
        return self.challenger_alias is not None and self.challenger_share > 0.0

    def variant(self, user_id: str) -> str:
        if not self.active:
            return PRODUCTION
        return CHALLENGER if bucket(user_id, self.salt) < self.challenger_share else PRODUCTION


def bucket(user_id: str, salt: str = DEFAULT_SALT) -> float:
    """A number in [0, 1), uniform over ids and always the same for one id."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64

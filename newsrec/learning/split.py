"""The user split: whole users go to training or to test, by a seeded hash of their id.

Everything counted or learned (popularity, CTR priors, trained models) sees training users only; every
scorer is measured on the same test users' impressions. Splitting users rather than impressions keeps a
reader's other impressions (and so their clicks) out of the statistics their test impressions are
scored with. A hash rather than a shuffle makes a user's side independent of the log's size and order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from newsrec.errors import InputError
from newsrec.types import Impression

SPLITS = ("user", "none")
TEST_SHARE = 0.2
MIN_USERS = 50  # below this a 20% test side has too few users to measure anything: default to "none"


def is_test_user(user_id: str, seed: int = 0, test_share: float = TEST_SHARE) -> bool:
    digest = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < test_share


@dataclass
class UserSplit:
    train: list[Impression]
    test: list[Impression]
    seed: int

    @property
    def train_users(self) -> set[str]:
        return {impression.user_id for impression in self.train}

    @property
    def test_users(self) -> set[str]:
        return {impression.user_id for impression in self.test}


def split_users(impressions: Sequence[Impression], seed: int = 0, test_share: float = TEST_SHARE) -> UserSplit:
    """Impressions of ~`test_share` of the users (by hash) to test, the rest to training; log order kept."""
    if not 0 < test_share < 1:
        raise InputError(f"test share must lie strictly between 0 and 1, got {test_share}")
    train: list[Impression] = []
    test: list[Impression] = []
    for impression in impressions:
        (test if is_test_user(impression.user_id, seed, test_share) else train).append(impression)
    if not train or not test:
        raise InputError(
            f"the user split left {'no training' if not train else 'no test'} impressions "
            f"({len({i.user_id for i in impressions})} users); use --split none for so small a log"
        )
    return UserSplit(train=train, test=test, seed=seed)


def default_split(impressions: Sequence[Impression]) -> str:
    """'user' when the log has enough users for a test side, else 'none' (leave-one-out)."""
    return "user" if len({impression.user_id for impression in impressions}) >= MIN_USERS else "none"

"""The user split, as the evaluation layer names it: it lives in newsrec/learning/split.py, since training
splits by the same rule and must not import the evaluation layer above it."""

from __future__ import annotations

from newsrec.learning.split import MIN_USERS, SPLITS, TEST_SHARE, UserSplit, default_split, is_test_user, split_users

__all__ = ["MIN_USERS", "SPLITS", "TEST_SHARE", "UserSplit", "default_split", "is_test_user", "split_users"]

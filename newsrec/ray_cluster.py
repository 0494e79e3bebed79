"""Joining a Ray cluster, or starting a local Ray, for the commands that spread work over Ray workers.

`batch-rerank --engine ray` (newsrec/batch.py) and `index --engine ray` (newsrec/encoding.py) share it. Ray
is imported here only, lazily: it is a dev requirement, optional at run time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from newsrec.errors import InputError

__all__ = ["ensure_ray", "LOCAL_OBJECT_STORE"]

LOCAL_OBJECT_STORE = 512 * 2**20  # a local Ray's shared memory for the pickled work (Ray's default: 30% of RAM)


def ensure_ray(address: str | None, missing_hint: str = "--engine ray needs Ray: pip install 'ray[data]'") -> Any:
    """The `ray` module, initialised: joined to the cluster at `address`, or a local Ray started on this
    machine whose workers import newsrec from this checkout. A Ray this process already started is reused."""
    try:
        import ray
    except ImportError:
        raise InputError(missing_hint) from None
    if not ray.is_initialized():
        if address:  # a cluster: newsrec must be installed on its workers
            ray.init(address=address, log_to_driver=False)
        else:
            package_root = str(Path(__file__).resolve().parent.parent)
            ray.init(
                include_dashboard=False,
                log_to_driver=False,
                object_store_memory=LOCAL_OBJECT_STORE,
                runtime_env={"env_vars": {"PYTHONPATH": package_root, **passed_env()}},
            )
    return ray


def passed_env() -> dict[str, str]:
    """Settings that reach workers through the environment (data dir, offline hub, token)."""
    names = ("NEWSREC_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NEWSREC_API_TOKEN", "HF_HOME")
    return {name: os.environ[name] for name in names if name in os.environ}

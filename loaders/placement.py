"""The last step: a host batch of numpy arrays becomes global jax.Arrays.

Each JAX process loads only its own rows (the loader shards by process),
so the arrays are built with jax.make_array_from_process_local_data: the
global batch is process_count x the local batch, and each device receives
the rows its shard of the sharding asks for. On one process this is a
device_put. The transfer is dispatched asynchronously, so it overlaps the
running training step without a read-ahead that the checkpointed iterator
state would not know about.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

ShardingSpec = jax.sharding.Sharding | Mapping[str, jax.sharding.Sharding]


def place_batch(batch: Mapping[str, np.ndarray], sharding: ShardingSpec) -> dict[str, jax.Array]:
    """One sharding for every feature (a NamedSharding's PartitionSpec is cut
    to each array's rank, so P("data", None) also fits the [batch] labels),
    or a mapping from feature name to sharding."""
    placed = {}
    for name, array in batch.items():
        target = sharding[name] if isinstance(sharding, Mapping) else _for_rank(sharding, np.ndim(array))
        placed[name] = jax.make_array_from_process_local_data(target, array)
    return placed


def _for_rank(sharding: jax.sharding.Sharding, rank: int) -> jax.sharding.Sharding:
    if isinstance(sharding, jax.sharding.NamedSharding) and len(sharding.spec) > rank:
        return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*sharding.spec[:rank]))
    return sharding

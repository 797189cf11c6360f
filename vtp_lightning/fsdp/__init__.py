"""FSDP2 through Lightning's ``ModelParallelStrategy``: the strategy and how a tokenizer is sharded."""

from vtp_lightning.fsdp.configure import shard_for_strategy
from vtp_lightning.fsdp.sharding import shard_tokenizer
from vtp_lightning.fsdp.strategy import FSDP2Strategy

__all__ = ["FSDP2Strategy", "shard_for_strategy", "shard_tokenizer"]

"""A tokenizer's latents on disk, for training a generator: written by ``lightning predict``, read back
by :func:`from_latents` or LightningDiT's ``ImgLatentDataset`` (the layout: :mod:`.layout`)."""

from vtp_lightning.latents.reader import LatentFolder, from_latents, read_statistics
from vtp_lightning.latents.statistics import ChannelMoments
from vtp_lightning.latents.writer import LatentWriter

__all__ = ["ChannelMoments", "LatentFolder", "LatentWriter", "from_latents", "read_statistics"]

"""Weights on disk: checkpoint files, the export directory format, and models rebuilt from them.

A low floor that the training modules, stage 2, the protocol evaluation and the CLIs all read from
(it imports no CLI module and nothing that trains):

- :mod:`.checkpoint_file`: one checkpoint file read tensors-only and written atomically (torch only);
- :mod:`.dcp_check`: a sharded torch-DCP checkpoint's pickled parts checked before torch reads them;
- :mod:`.provenance`: which model class and architecture wrote a checkpoint;
- :mod:`.lightning_io`: Lightning's checkpoint IO plugin and strategies with their own reader;
- :mod:`.export_dir`: the export directory format (``config.json`` + ``model.safetensors``
  [+ ``model.yaml``]), its one writer and one reader;
- :mod:`.pretrained`: ``read_weights``, ``load_autoencoder``, ``from_pretrained``,
  ``export_pretrained`` (above the models and the official converter, which it uses).

Nothing is imported here, so that the models can read a tensor file through
:mod:`.checkpoint_file` without pulling in the models themselves.
"""

"""Loading the official VTP checkpoints (MIT code at github MiniMax-AI/VTP) into this suite.

:mod:`.source` finds and reads an official checkpoint (released Hugging Face directory or training
state dict); :mod:`.convert` turns it into this suite's tensors, accounting for every one, in steps
that each have a module: :mod:`.refusals` (what has no counterpart here), :mod:`.architecture`
(module configs inferred from the tensors), :mod:`.renaming` and :mod:`.pixel_folds`;
:mod:`.loading` uses it where weights are read; :mod:`.model_options` writes the options of a
matching tokenizer (``model.yaml``); :mod:`.command` is ``vtp-convert``.
"""

"""Loading the official VTP checkpoints (MIT code at github MiniMax-AI/VTP) into this suite.

:mod:`.source` finds and reads an official checkpoint (released Hugging Face directory or training
state dict); :mod:`.convert` renames and folds its tensors into this suite's names, accounting for
every one; :mod:`.command` is ``vtp-convert``.
"""

"""``python -m vtp_lightning`` runs the same CLI as the ``lightning`` and ``vtp`` commands."""

import sys

from vtp_lightning.cli import main

sys.exit(main())

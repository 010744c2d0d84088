"""``python -m glsplat ...``: the ``glsplat`` command line."""
import sys

from .cli import main

sys.exit(main())

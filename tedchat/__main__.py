"""``python -m tedchat``: the same as the ``tedchat`` command."""

import sys

from tedchat.cli import main

sys.exit(main())

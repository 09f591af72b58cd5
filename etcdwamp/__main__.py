"""``python -m etcdwamp``: the ``etcdwamp`` command."""

import sys

from .cli import main

sys.exit(main())

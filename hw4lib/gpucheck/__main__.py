"""``python -m hw4lib.gpucheck``: the GPU check (see :mod:`hw4lib.gpucheck.run`)."""

import sys

from .run import main

sys.exit(main())

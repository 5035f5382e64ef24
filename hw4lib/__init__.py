"""hw4lib: a reproduction of NTU DLCV Fall 2022 HW4 (DVGO novel view synthesis, BYOL pre-training).

Layers: ``config``/``errors``/``results`` are shared by everything; ``data``, ``metrics``,
``nerf`` and ``ssl`` hold the methods (``nerf`` and ``ssl`` never import each other);
``report`` runs notebooks and builds tables; ``cli`` and ``commands`` are the thin ``hw4``
command line. Nothing below ``cli`` imports it.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root when installed editable (``pip install -e .``), else the cwd.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

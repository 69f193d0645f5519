"""``python -m memoturn.server``: memoturnd."""

from .main import main

raise SystemExit(main())

"""``python -m explorer``: the same as the ``latent-explorer`` command."""

from __future__ import annotations

from explorer.qt.app import main

raise SystemExit(main())

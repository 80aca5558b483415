"""``python -m consumer``: the command line."""

from consumer.cli import main

raise SystemExit(main())

"""``python -m simsearch.cli``: the same as the ``simsearch`` command."""

from simsearch.cli import main

main()

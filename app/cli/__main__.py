"""`python -m app.cli`: the `ptychojobs` command."""

from app.cli import main

main()

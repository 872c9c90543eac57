"""The `ptychojobs` command."""

from __future__ import annotations

import typer

from app.cli import runs, service, study, tokens, workers

cli = typer.Typer(
    name="ptychojobs",
    help="Job-submission service for ptychography training studies.",
    no_args_is_help=True,
    add_completion=False,
)
study.register(cli)
service.register(cli)
runs.register(cli)
workers.register(cli)
tokens.register(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()

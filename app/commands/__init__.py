"""The `ptychojobs` command's subcommands, one module per area."""

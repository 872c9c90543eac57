"""How a claimed job is run: the `Executor` seam (`base`), the warm fork server that runs
attempts in child processes (`forkserver`), and the default training executor (`training`)."""

"""`python -m pipeline` runs the `sessions` command line."""

from pipeline.cli import main

main()

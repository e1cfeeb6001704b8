"""`python -m yt8mkit`: the `yt8m` command."""

from yt8mkit.cli.main import main

main()

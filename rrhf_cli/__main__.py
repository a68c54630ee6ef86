"""`python -m rrhf_cli` (and `torchrun -m rrhf_cli`) run the `rrhf` command."""

from rrhf_cli.app import main

main()

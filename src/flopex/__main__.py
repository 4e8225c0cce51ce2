"""``python -m flopex`` runs the CLI."""

from flopex.cli.main import main

main()

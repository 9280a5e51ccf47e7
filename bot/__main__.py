"""``python -m bot`` is the ``pontibot`` command."""

from bot.cli import main

main()

"""Sub-commands of the ``pontibot`` CLI, one module per command group."""

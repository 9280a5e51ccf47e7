"""Channel adapters: platform data ↔ IncomingMessage/Reply, and nothing else."""

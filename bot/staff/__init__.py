"""Staff side of pontibot: console pages and JSON API under /staff, accounts, sessions, audit log."""

"""bot.notifications."""

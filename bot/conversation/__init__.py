"""One message's way through the bot: per-conversation locks, flood control, media, the dispatcher."""

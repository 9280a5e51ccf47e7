"""Telegram channel: python-telegram-bot as the Bot API client, polling or webhook into the dispatcher.

The only package that imports ``telegram``. It turns updates into :class:`IncomingMessage` and
:class:`Reply` values into Bot API calls; the flow engine stays the dialogue manager.

    channel.py    TelegramChannel: connect, poll, send (rate limits, 429, 403), forum topics
    inbound.py    UpdateHandler: one update in per-chat order → the dispatcher; polite notes
    callbacks.py  button data: payloads over 64 bytes travel as tokens, found again after a restart
    transport.py  python-telegram-bot's HTTP transport on aiohttp
    webhook.py    POST /webhooks/telegram (secret-token header checked before the body is read)
"""

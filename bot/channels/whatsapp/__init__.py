"""WhatsApp through Twilio: signed webhooks in, REST messages out, the 24-hour window.

The only package that imports ``twilio``.

    channel.py   WhatsAppChannel: per-chat processing, media, numbered options, sends, notifications
    inbound.py   Twilio's webhook forms → WhatsAppInbound / DeliveryUpdate (BadWebhook → 400)
    render.py    Reply → Twilio messages (split text, numbered options, quick replies, map links)
    twilio.py    twilio's REST client at ``twilio.api_base_url`` with a timeout; the errors of sending
    webhook.py   POST /webhooks/whatsapp and /status, signature checked before the form is used
"""

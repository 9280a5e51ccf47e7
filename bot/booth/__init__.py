"""Car Free Day booth: the QR poster, LAN address detection, the booth screen."""

"""Conversation logic, platform-agnostic: messages, flow engine, one module per journey, texts."""

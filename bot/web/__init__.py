"""Server-rendered resident pages (web chat, booth screen): templates and static files."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES = Environment(
    loader=FileSystemLoader(WEB_DIR / "templates"), autoescape=select_autoescape(["html"])
)

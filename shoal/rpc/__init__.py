"""Framing, messages, transport and authentication shared by every process."""

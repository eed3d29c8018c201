"""Widgets that render the model and emit intents."""

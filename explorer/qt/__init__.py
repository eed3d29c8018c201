"""Widgets, controllers and the one door (the worker) between Qt and a live trainer.Session."""

"""Kivy screens; they render the dialog state and report key presses, nothing more."""

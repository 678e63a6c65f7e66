"""Devices: camera, face, OCR, cash units (SSP and simulator), keypad, printer."""

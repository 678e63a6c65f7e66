"""Speech: recognition, synthesis, audio I/O, voice activity and Chinese number text."""

"""The widgets of the terminal UI, one module each."""

"""The conversation history: one SQLite file, split along its seams.

``files`` says which file the front ends open (and starting a fresh one); ``store`` holds the
store itself. Nothing here is imported by ``tedchat --help``.
"""

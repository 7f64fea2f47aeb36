"""tedchat's terminal UI, built on Textual.

Importing this package imports Textual: the CLI imports it inside ``chat``/``compare``'s
``run``, never at startup, so ``tedchat --help`` stays light.

- :mod:`tedchat.tui.app`: the App (themes, keymap, history, engines loading in the background)
- :mod:`tedchat.tui.screens`: chat, compare, conversations, settings, help, floorplan, pickers
- :mod:`tedchat.tui.widgets`: prompt, messages, status bar, compare pane and summary, floorplan
- :mod:`tedchat.tui.live`: streaming answers to the screen on a frame clock
- :mod:`tedchat.tui.markdown`: streamed Markdown drawn as lines, block by block
- :mod:`tedchat.tui.themes`: themes as TOML files; the remembered choice
- :mod:`tedchat.tui.terminal_watch`: a terminal that goes away (hangup) ends the app, the
  answer in progress saved as ``interrupted``

The conversation model and context trimming, shared with ``tedchat ask``, live in
:mod:`tedchat.conversation`.
"""

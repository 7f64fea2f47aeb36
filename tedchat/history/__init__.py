"""The conversation history: one SQLite file, split along its seams.

- ``files``: which file the front ends open (and starting a fresh one);
- ``store``: the :class:`~tedchat.history.store.Store`, its transactions, reads and writes;
- ``writer``: the :class:`~tedchat.history.writer.ReplyWriter` saving a reply as it streams;
- ``records``: the value objects reads give back;
- ``tree``: a conversation's messages as a tree: branches, siblings, the active path;
- ``schema``: the tables and the migrations between schema versions;
- ``search``: the CJK-aware text of the FTS5 search index;
- ``liveness``: whether the process writing a reply still runs;
- ``integrity``: checking an existing file before anything writes to it;
- ``export``: conversations as JSON (to import again) and Markdown documents;
- ``votes``: arena votes, their panes and pairwise results.

Nothing here is imported by ``tedchat --help``.
"""

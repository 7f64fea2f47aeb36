"""``tedchat bench``: side-by-side engine benchmarks.

One module, one job:

- :mod:`~tedchat.bench.prompts` — the built-in prompt set and prompt files;
- :mod:`~tedchat.bench.runner` — runs every prompt on every engine, interleaved, through
  :func:`tedchat.session.run_turn` (so the figures are :class:`tedchat.metrics.StreamMeter`'s);
- :mod:`~tedchat.bench.stats` — medians, spreads and ratios over the recorded runs;
- :mod:`~tedchat.bench.record` — the JSON record (machine, versions, runs) and its CSV form;
- :mod:`~tedchat.bench.schema` — the record's JSON Schema and a small validator;
- :mod:`~tedchat.bench.charts` — bar charts, as unicode blocks and as inline SVG;
- :mod:`~tedchat.bench.report` — the terminal report (tables and charts);
- :mod:`~tedchat.bench.html_report` — the self-contained HTML report;
- :mod:`~tedchat.bench.progress` — the progress bar on stderr.

Everything after the runner works on the record dict alone, so a saved JSON file can be
summarised and drawn again exactly as it was when it was made.
"""

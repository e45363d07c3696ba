"""The results page: markdown rendered from metrics/, params.yaml and bench/results/.

``results.render`` puts the sections in order: the MNIST test numbers (``results``), the
field sets and the gate's decisions (``results``; the int8 artifact's parity and the
float32-or-int8 choice in ``int8``), each benchmark's table (``bench``, with the research
tables in ``ideas`` and the int8 comparisons in ``int8``), then the configuration;
``markdown`` holds the table and number formats. The report stage (``pipeline/report.py``)
is its only caller.
"""

"""The results page: markdown rendered from metrics/, params.yaml and bench/results/.

``results.render`` puts the sections in order: the MNIST test numbers (``results``), the
field sets and the gate's decision (``results``), each benchmark's table (``bench``, with
the research tables in ``ideas``), then the configuration; ``markdown`` holds the table and
number formats. The report stage (``pipeline/report.py``) is its only caller.
"""

"""Users' corrections -> the DVC-tracked dataset training and the champion gate read.

Offline only (the ``export_corrections`` stage): it reads the service's corrections store
and inference log through :mod:`mnist_mlops.monitoring` and writes the format that
:mod:`mnist_mlops.data.corrections` defines.
"""

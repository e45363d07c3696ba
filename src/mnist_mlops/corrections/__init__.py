"""The corrections dataset: users' corrections as training and the champion gate read them.

- :mod:`.export`: the ``corrections`` stage's library (``python -m pipeline.corrections``):
  corrections split by request id into a train and a holdout part;
- :mod:`.dataset`: the on-disk format of those parts (``data/corrections/*.npz``), read by
  :mod:`mnist_mlops.train.extra_digits` and the field stage.

Where the service keeps corrections as users send them is the serving side's
:mod:`mnist_mlops.monitoring.corrections_store` (torch-free, shipped in the Bento); this
room is offline and needs only numpy, so training depends on nothing of the service.
"""

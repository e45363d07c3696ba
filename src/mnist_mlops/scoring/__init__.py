"""Bulk scoring: a folder of images or an array of digits -> a Parquet/CSV of predictions.

    python -m pipeline.score models/model.onnx scans/ predictions.parquet
    python -m pipeline.score models:/mnist-mlp@champion digits.npy out.csv --engine ray

The steps, one module each:

1. :mod:`.model`     the model, by path or registry URI, read once as bytes;
2. :mod:`.sources`   the inputs, loadable by range: images through the service's
                     preprocessing, arrays checked by
                     :mod:`mnist_mlops.inference.arrays` (the service's check);
3. :mod:`.parts`     numbered, atomically written parts: a killed run resumes;
4. :mod:`.predictor` one ONNX Runtime session, the same class in every engine;
5. :mod:`.local` / :mod:`.ray_engine`  who runs the parts: this machine's cores, or Ray;
6. :mod:`.job`       ties them together; :mod:`.record` logs the MLflow run.

Nothing is imported here, so importing one module pulls in nothing else.
"""

"""How good a model is: MNIST test analysis, and the field sets scored through the serving path.

The field sets decide which model becomes champion, so they are built from the *test* split
only and scored with the exact bytes -> imaging -> ONNX path the service runs.
"""

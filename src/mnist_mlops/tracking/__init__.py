"""MLflow: where runs go (the tracking URI), what they hold, and the model registry's champion."""

"""Extra training digits in the look the service hands the model (the prepare stage)."""

"""The serving Bento: the model imported into BentoML's store and the Bento built around it.

Needs BentoML and the serving side only (no torch), so it lives apart from training.
"""

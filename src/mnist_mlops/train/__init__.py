"""Training: the network, its LightningModule, augmentation, data loading and the loop.

Imports torch and Lightning; nothing on the serving side imports this package.
"""

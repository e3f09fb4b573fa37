"""Photometric fitting: inputs (images, detection, crops, masks), losses, the staged optimiser,
results I/O and the ``flamefit`` command-line interface."""

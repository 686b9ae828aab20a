"""atlas: a static neuron-atlas site generator for image classifiers."""
__version__ = "0.1.0"

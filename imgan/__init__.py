"""imgan: run and train GANs on images from the command line."""

__version__ = "0.1.0"

"""One module per command: the picture function, its batch worker, and the ``Pipeline`` the command runs.

``imgan.cli`` and ``imgan serve`` both build their pipelines with each module's ``pipeline``.
Nothing here imports torch.
"""

STYLES = {"monet": "cyclegan-monet", "vangogh": "cyclegan-vangogh", "cezanne": "cyclegan-cezanne",
          "ukiyoe": "cyclegan-ukiyoe"}
"""The short names ``imgan stylize --style`` takes, and the registry model each one is."""

"""Networks, entropy models, the integer entropy-parameter path and the model registry.

Models know nothing of files: they exchange integer symbol groups with a coder object.
"""

"""The learnable models. Importing the package imports every model module, whose
`@register_model` decorators fill the one registry (models/registry.py)."""
from models import au_cnn, baselines, bilstm, glove, registry  # noqa: F401  (the imports fill the registry)

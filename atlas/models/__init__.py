"""Models: the registry of classifiers, their input settings and their layers."""
from atlas.models.spec import ModelSpec, get_spec, registry

__all__ = ["ModelSpec", "get_spec", "registry", "load_model"]


def load_model(spec: ModelSpec, weights: str | None = None):
    """Build `spec`'s model with `weights`, ready for probing (eval, frozen, no in-place ops)."""
    from atlas.models.checkpoint import prepare_for_probing
    return prepare_for_probing(spec.build(weights))

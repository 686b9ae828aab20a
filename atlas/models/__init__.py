"""Models: every classifier atlas can open by name, their input settings and their layers."""
from atlas.models.registry import get_spec, register, registry
from atlas.models.spec import ModelSpec

__all__ = ["ModelSpec", "get_spec", "register", "registry", "load_model"]


def load_model(spec: ModelSpec, weights: str | None = None):
    """Build `spec`'s model with `weights`, ready for probing (eval, frozen, no in-place ops)."""
    from atlas.models.checkpoint import prepare_for_probing
    return prepare_for_probing(spec.build(weights))

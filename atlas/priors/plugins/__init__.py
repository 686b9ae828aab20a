"""The built-in priors, one file each; every module here that defines `PRIOR` is registered
(atlas.priors.registry). Module level imports no torch."""

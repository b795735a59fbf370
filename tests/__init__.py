"""The tests, a package so that modules import their helpers as ``tests.helpers``."""

# first: it makes basicsr 1.4.2 importable with current torchvision, and every test module imports basicsr
import cnlrn_arch  # noqa: F401

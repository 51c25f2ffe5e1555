"""The cdo_train version (a leaf module: submodules import it without importing the package facade).

Example:
    >>> isinstance(__version__, str)
    True
"""

__version__ = "0.1.0"

"""A third-party Strato plugin in its own distribution, as a vendor would ship one.

It is found by its entry point alone: nothing in Strato names it.
"""

from setuptools import setup

setup(
    name="strato-hello",
    version="1.0.0",
    packages=["strato_hello"],
    install_requires=["strato"],
    entry_points={"strato.api": ["hello = strato_hello"]},
)

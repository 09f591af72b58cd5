"""Packaging for etcdwamp."""

from setuptools import find_packages, setup

with open("README.rst", encoding="utf-8") as readme:
    LONG_DESCRIPTION = readme.read()

setup(
    name="etcdwamp",
    version="0.1.0.dev0",
    description="Async etcd3 client for Twisted, persistent maps and a WAMP component for Crossbar.io",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["etcdwamp", "etcdwamp.*"]),
    package_data={"etcdwamp": ["py.typed"]},
    zip_safe=False,
    install_requires=[
        "autobahn>=23.1.2",
        "twisted[tls]>=23.10.0",
        "txaio>=23.1.1",
        "treq>=23.11.0",
        "cbor2>=5.4.0",
        "flatbuffers>=23.5.26",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6.90",
            "cryptography>=41",
            "crossbar>=23.1.2",
            "playwright>=1.40",
        ],
        "dev": [
            "mypy>=1.8",
            "ruff>=0.4",
        ],
    },
    entry_points={"console_scripts": ["etcdwamp = etcdwamp.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
        "Topic :: Database",
        "Typing :: Typed",
    ],
)

"""Package layout that pyproject.toml cannot express: the top-level hub_cards/ folder of card templates ships
inside the wheel as `speechgpt_hf/hub_cards/` (every other setting is in pyproject.toml)."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["speechgpt_hf*", "speechgpt_hf_cli*"]), "speechgpt_hf.hub_cards"],
    package_dir={"speechgpt_hf.hub_cards": "hub_cards"},
)

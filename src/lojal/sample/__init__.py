"""A realistic, deterministic Nordic web shop for demos, tests and benchmarks."""

from lojal.sample.shop import SampleShop, generate_shop

__all__ = ["SampleShop", "generate_shop"]

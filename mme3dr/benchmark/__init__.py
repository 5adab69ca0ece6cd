"""Benchmark data: the category taxonomy, manifests (load, validate, hash, build), Toys4K reference
sources, TRELLIS captions, the external Blender converter, and the built-in ``demo`` benchmark
(:mod:`mme3dr.benchmark.demo`, not re-exported: it builds meshes, so it needs numpy).

Light: the standard library only (``datasets`` and Blender load on use).
"""

from __future__ import annotations

from mme3dr.benchmark.captions import (
    CaptionsError,
    CaptionTable,
    attach_prompts,
    prompt_sha256,
    read_captions_csv,
)
from mme3dr.benchmark.manifest import Manifest, ManifestError, load_manifest, validate_manifest
from mme3dr.benchmark.taxonomy import CATEGORIES, CATEGORY_IDS, V1_COUNTS, Case, CaseError, Category
from mme3dr.benchmark.toys4k import ReferenceAsset, Toys4KError, open_source, resolve_references

__all__ = [
    "CATEGORIES",
    "CATEGORY_IDS",
    "V1_COUNTS",
    "CaptionTable",
    "CaptionsError",
    "Case",
    "CaseError",
    "Category",
    "Manifest",
    "ManifestError",
    "ReferenceAsset",
    "Toys4KError",
    "attach_prompts",
    "load_manifest",
    "open_source",
    "prompt_sha256",
    "read_captions_csv",
    "resolve_references",
    "validate_manifest",
]

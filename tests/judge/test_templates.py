"""Prompt templates: package data, hashed by their bytes, strict variables, OpenAI message layout."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
import pytest

from mme3dr.judge import available_templates, encode_image, load_template, template_from_bytes


def test_every_shipped_template_loads_and_hashes_its_file_bytes():
    shipped = available_templates()
    assert {"unifiedreward2-pointwise", "unifiedreward-think-geometry", "qwen-category-match",
            "qwen-consistency", "part-completeness", "eval-checklist"} <= set(shipped)
    for name, versions in shipped.items():
        for version in versions:
            t = load_template(name, version)
            path = resources.files("mme3dr.judge").joinpath("templates", f"{name}.v{version}.json")
            data = path.read_bytes()
            assert t.sha256 == hashlib.sha256(data).hexdigest() and t.id == f"{name}.v{version}"


def test_any_edit_changes_the_hash():
    data = resources.files("mme3dr.judge").joinpath("templates", "qwen-consistency.v1.json").read_bytes()
    edited = json.loads(data)
    edited["user"] = edited["user"].replace("0 and 1", "zero and one")
    assert template_from_bytes(json.dumps(edited).encode()).sha256 != load_template("qwen-consistency").sha256


def test_variables_must_match_exactly():
    t = load_template("part-completeness")
    with pytest.raises(ValueError, match="missing \\['n_items'\\]"):
        t.render_text({"prompt": "a", "parts": "1. leg"})
    with pytest.raises(ValueError, match="unexpected \\['colour'\\]"):
        t.render_text({"prompt": "a", "parts": "1. leg", "n_items": 1, "colour": "red"})
    with pytest.raises(KeyError, match="shipped"):
        load_template("no-such-template")


def test_placeholders_must_equal_declared_variables():
    body = {"name": "x", "version": 1, "user": "${prompt} ${extra}", "variables": ["prompt"],
            "parser": {"kind": "scores", "fields": []}}
    with pytest.raises(ValueError, match="placeholders"):
        template_from_bytes(json.dumps(body).encode())


def test_messages_put_images_first_as_data_urls():
    t = load_template("unifiedreward2-pointwise")
    images = [encode_image(np.zeros((8, 8, 3), np.uint8), fmt) for fmt in ("png", "jpeg")]
    [message] = t.messages(images, {"prompt": "a {braced} frog"})
    assert message["role"] == "user"
    kinds = [part["type"] for part in message["content"]]
    assert kinds == ["image_url", "image_url", "text"]
    assert message["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert "Text Caption: [a {braced} frog]" in message["content"][2]["text"]

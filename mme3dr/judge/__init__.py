"""The OpenAI-compatible VLM judge client: requests, prompt templates, reply parsers, response cache.

Light on purpose: no torch, no OpenGL (a test checks ``sys.modules``); ``httpx2`` is imported when a
client opens. Used by the evaluation judge (``mme3dr judge``, ``mme3dr evaluate --judge``) and by the
AR3D-R1 reward models (``ar3d_r1.rewards``). See ``docs/judge.md``.
"""

from mme3dr.judge.cache import CachedReply, ResponseCache, cache_key
from mme3dr.judge.checklist import (
    CHECKLIST_VERSION,
    ChecklistItem,
    Part,
    derive_checklist,
    numbered,
    prompt_parts,
)
from mme3dr.judge.client import (
    FAILURE_REASONS,
    PROFILES,
    STANDARD_FIELDS,
    Decoding,
    JudgeClient,
    JudgeConfig,
    JudgeRequest,
    JudgeRequestError,
    JudgeResult,
    RequestFailure,
    ask_all_sync,
    request_key,
)
from mme3dr.judge.images import EncodedImage, encode_image
from mme3dr.judge.parsers import ItemScores, Parsed, ParseFailure, Scores, parse_reply
from mme3dr.judge.templates import PromptTemplate, available_templates, load_template, template_from_bytes

__all__ = [
    "CHECKLIST_VERSION", "FAILURE_REASONS", "PROFILES", "STANDARD_FIELDS", "CachedReply", "ChecklistItem",
    "Decoding", "EncodedImage", "ItemScores", "JudgeClient", "JudgeConfig", "JudgeRequest",
    "JudgeRequestError",
    "JudgeResult", "ParseFailure", "Parsed", "Part", "PromptTemplate", "RequestFailure", "ResponseCache",
    "Scores", "ask_all_sync", "available_templates", "cache_key", "derive_checklist", "encode_image",
    "load_template", "numbered", "parse_reply", "prompt_parts", "request_key",
    "template_from_bytes",
]

"""AR3D-R1 reward models as plain callables, and the Hi-GRPO ensembles (design.md §6, docs/rewards.md).

``reward(prompts, views, **columns) -> RewardBatch`` (named dimensions, NaN + reason for a failure).
HPS v2.1 runs in process (torch, imported when built); the others ask OpenAI-compatible servers
through ``mme3dr.judge``. Ensembles are pure functions in :mod:`ar3d_r1.rewards.ensemble`.
"""

from ar3d_r1.rewards.endpoints import (
    Endpoint,
    EndpointsError,
    RewardEndpoints,
    check_endpoints,
    endpoints_from_dict,
    load_endpoints,
)
from ar3d_r1.rewards.ensemble import dimension_normalised, r_high, r_low, step1_target
from ar3d_r1.rewards.outputs import RewardBatch, merge
from ar3d_r1.rewards.vlm import (
    VLM_REWARDS,
    CategoryMatch,
    Consistency,
    PartCompleteness,
    UnifiedReward2,
    UnifiedThinkGeometry,
    VLMReward,
)

__all__ = [
    "VLM_REWARDS", "CategoryMatch", "Consistency", "Endpoint", "EndpointsError", "PartCompleteness",
    "RewardBatch", "RewardEndpoints", "UnifiedReward2", "UnifiedThinkGeometry", "VLMReward",
    "check_endpoints", "dimension_normalised", "endpoints_from_dict", "load_endpoints", "merge", "r_high",
    "r_low", "step1_target",
]


def __getattr__(name: str):
    if name in ("HPSLoadError", "HPSReward", "HPS_V21", "hps_from_options"):  # torch: only when asked for
        from ar3d_r1.rewards import hps

        return getattr(hps, name)
    raise AttributeError(name)

"""The rollout stage: the prompts (:mod:`.prompts`), the two-step Hi-GRPO rollout (:mod:`.hi_grpo`) and
the authors' released one-step rollout (:mod:`.one_step`, with our default reasoning prompt
``reasoning_prompt.txt``) and the engines that generate completions (:mod:`.backends`, in process or a
served vLLM / transformers).

Light on import: the submodules import torch themselves. Import the pieces from their modules
(``from ar3d_r1.rollout.hi_grpo import two_step_rollout``).
"""

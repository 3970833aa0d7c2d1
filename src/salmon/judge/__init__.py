"""The self-judge: principle-driven pairwise preferences from the model itself.

- `stage`: `salmon judge`, pairs x principles -> judgments (both orders, prefix-shared)
- `core`: prompt building, prefix sharing and the logit("a") - logit("b") score
- `evaluate`: `salmon eval-judge`, judge quality on a labelled pair file
- `bench`: `salmon bench judge`, the shared prefix against the full prompt per principle
"""

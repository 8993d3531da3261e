"""``mirada publish``: stage and push the datasets, adapters, eval report, notebooks, configs and demo Space.

It lives in ``vlm`` because it publishes training runs (and merges them on request) and exports the
demo Space; it reads eval reports as files, so it does not import the ``eval`` layer.
"""

from vlm.publish.plan import PublishOptions, PublishPlan, RepoPlan, plan_publish, push_plan

__all__ = ["PublishOptions", "PublishPlan", "RepoPlan", "plan_publish", "push_plan"]

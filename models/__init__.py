"""From numbers to labels: LightGBM models, spatial evaluation, trust, model cards.

Public names are imported on first use::

    import regenmap.models as rm
    data = rm.LabelledFields.of(features, labels, target="tillage", groups=region)
    model = rm.train_target(data, rm.TrainOptions(num_boost_round=200))
    report = rm.cross_validate(data)
    rm.save_model(model, "model/tillage")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regenmap._lazy import lazy_getattr

if TYPE_CHECKING:
    from regenmap.models.artifact import load_model, save_model
    from regenmap.models.evaluate import cross_validate, cross_validate_predictions, evaluation_report
    from regenmap.models.explain import top_contributions
    from regenmap.models.options import CVOptions, EvaluationOptions, LabelledFields, TrainOptions
    from regenmap.models.predict import predict_target
    from regenmap.models.train import TrainedModel, train_target

_EXPORTS = {
    "LabelledFields": "regenmap.models.options",
    "TrainOptions": "regenmap.models.options",
    "CVOptions": "regenmap.models.options",
    "EvaluationOptions": "regenmap.models.options",
    "train_target": "regenmap.models.train",
    "cross_validate": "regenmap.models.evaluate",
    "cross_validate_predictions": "regenmap.models.evaluate",
    "evaluation_report": "regenmap.models.evaluate",
    "predict_target": "regenmap.models.predict",
    "save_model": "regenmap.models.artifact",
    "load_model": "regenmap.models.artifact",
    "top_contributions": "regenmap.models.explain",
    "TrainedModel": "regenmap.models.train",
}

__all__ = [
    "CVOptions", "EvaluationOptions", "LabelledFields", "TrainOptions", "TrainedModel",
    "cross_validate", "cross_validate_predictions", "evaluation_report", "load_model",
    "predict_target", "save_model", "top_contributions", "train_target",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)

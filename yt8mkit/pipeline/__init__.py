"""The whole system in one run directory: data, folds, zoo, ensemble, distillation,
export, prediction and evaluation, each stage resumable."""
